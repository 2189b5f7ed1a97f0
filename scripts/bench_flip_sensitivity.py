"""Experiment (issue 28): does the compressed model's own sensitivity to quantization-sized perturbations predict
where its answer differs from the baseline's?  MiniLM int8 on TREC (``quant=int8``: torch.ao static int8 per layer).

Collect (cached in ``--cache``, one file): the baseline's and the int8 model's logits on calibration + test (pooled,
the bench_flip_aware order), and the logits of *float-equivalent replicas* of the int8 model: every quantized Linear
becomes ``fake_quant_out(linear(fake_quant_in(x), W_deq + noise, b))`` with the int8 model's own per-channel weight
steps and input / output activation scales and zero points (so only the int8 model's file is needed):

* ``deq``: no noise (reproduces the int8 answers on ~98% of the inputs: fbgemm rounding differs slightly);
* ``deqfp``: dequantized weights, fp32 activations (no activation quantization): one float pass;
* ``w{k}``: weights + U(-1/2, 1/2) x the channel's weight step, seed k (``W{k}``: twice that);
* ``a{k}``: activations dithered before quantization, x + U(-1/2, 1/2) x the input step, seed k;
* ``wa{k}``: both.

Evaluate: ``bench_flip_aware.one_resplit`` (20 seeded resplits, coverage 0.9 selector, flip-catch, deferral for 99%
agreement) on msp / entropy / margin and on flip_aware (logits only) + extra columns from K perturbed passes: the
share of passes whose answer differs from the int8 answer, mean KL(int8 || perturbed) (and its log), mean and min
probability margin of the int8 answer under perturbation, sd of its probability. ``lr`` = flip_aware's logistic
regression (crossfit, 5 folds); ``gbm`` = sklearn HistGradientBoostingClassifier on the same folds.

Measured (2,152 pooled TREC questions, 1,075 calibration per resplit; the int8 model's answer differs from the
baseline's on 18.4%, so at 90% coverage no scorer can catch more than ~0.54 of the flips), mean ± sd over 20 resplits,
seeds 0..19 / 100..119:

| scorer | flip-catch @ 90% | minus margin (paired) | deferral for 99% agreement |
|---|---|---|---|
| margin (best softmax) | 0.341 / 0.333 | | 0.524 / 0.523 |
| flip_aware, logits only (lr) | 0.357 / 0.350 | +0.016 / +0.017 | 0.470 / 0.472 |
| + weight-noise sensitivity, K=8 (lr) | 0.437 / 0.408 | +0.096 ± 0.049 / +0.074 ± 0.056 | 0.425 / 0.427 |
| + weight-noise sensitivity, K=16 (lr) | 0.444 / 0.418 | +0.103 ± 0.046 / +0.085 ± 0.056 | 0.414 / 0.413 |
| + activation-dither sensitivity, K=8 (lr) | 0.427 / 0.422 | +0.086 ± 0.040 / +0.089 ± 0.058 | 0.421 / 0.413 |
| + all 40 perturbed passes (lr) | 0.433 / 0.413 | +0.092 ± 0.048 / +0.080 ± 0.057 | 0.418 / 0.417 |
| + w, a, wa K=8 x margin interactions (lr) | 0.418 / 0.403 | +0.077 ± 0.042 / +0.070 ± 0.061 | 0.430 / 0.421 |
| + weight-noise sensitivity, K=8 (gbm) | 0.415 / 0.389 | +0.074 ± 0.046 / +0.055 ± 0.050 | 0.455 / 0.457 |
| + deqfp: one pass with fp32 activations (lr) | 0.551 / 0.540 | +0.210 ± 0.074 / +0.207 ± 0.057 | 0.180 / 0.174 |

The sensitivity features plateau at +0.08-0.09 over margin (the +0.10 bar of issue 28 is not met on fresh resplits);
``deqfp`` reaches the ceiling because it agrees with the baseline on 99.6% of the inputs: MiniLM's flips come from
activation quantization, and that pass is a weight-only int8 model at fp32 cost, not a cheap detector.

Usage (one thread; ~20-35 s per replica pass of 2,152 texts on a busy 2-core machine):
    PYTHONPATH=. .venv/bin/python scripts/bench_flip_sensitivity.py collect      # deq, deqfp, w/a/wa 0..7
    PYTHONPATH=. .venv/bin/python scripts/bench_flip_sensitivity.py collect --modes w8,...,w15,W0,...,W7
    PYTHONPATH=. .venv/bin/python scripts/bench_flip_sensitivity.py eval --variants "lr: sens_w K=16" --seeds 0:20
"""
from __future__ import annotations

import argparse
import copy
import sys
import time
from pathlib import Path

import numpy as np
import torch
from torch import nn

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "scripts")]
EPS = 1e-12


class FloatEquivalent(nn.Module):
    """A float replica of one ``QuantWrapper(quantized Linear)``, optionally perturbed (see the module docstring)."""

    def __init__(self, wrapper: nn.Module) -> None:
        super().__init__()
        ql, wq = wrapper.module, wrapper.module.weight()
        self.W = wq.dequantize()
        per_channel = wq.qscheme() in (torch.per_channel_affine, torch.per_channel_symmetric)
        self.wstep = (wq.q_per_channel_scales().float() if per_channel
                      else torch.full((self.W.shape[0],), float(wq.q_scale())))
        self.b = ql.bias()
        self.in_s, self.in_z = float(wrapper.quant.scale), int(wrapper.quant.zero_point)
        self.out_s, self.out_z = float(ql.scale), int(ql.zero_point)
        self.set("deq", 0)

    def set(self, mode: str, seed: int) -> None:
        self.mode, self.gen = mode, torch.Generator().manual_seed(seed)
        size = 2.0 if "W" in mode else 1.0
        self.Wn = (self.W + (torch.rand(self.W.shape, generator=self.gen) - 0.5) * size * self.wstep[:, None]
                   if "w" in mode.lower() else self.W)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.mode == "deqfp":
            return nn.functional.linear(x, self.W, self.b)
        if "a" in self.mode:
            x = x + (torch.rand(x.shape, generator=self.gen) - 0.5) * self.in_s
        x = torch.fake_quantize_per_tensor_affine(x, self.in_s, self.in_z, 0, 255)
        y = nn.functional.linear(x, self.Wn, self.b)
        return torch.fake_quantize_per_tensor_affine(y, self.out_s, self.out_z, 0, 255)


def collect(path: Path, modes: list[str]) -> None:
    import bench_flip_aware as B

    case = B.CASES["minilm"]
    runner, data, base, comp = B.build_pair(B.compose(case.overrides))
    out = {"base_logits": torch.cat([runner.outputs(base, s, data[s]).logits for s in case.splits]),
           "comp_logits": torch.cat([runner.outputs(comp, s, data[s]).logits for s in case.splits]),
           "labels": torch.cat([data[s].y for s in case.splits]).long()}
    out["is_test"] = torch.arange(len(out["labels"])) >= len(data["calibration"])
    if path.exists():
        old = torch.load(path, weights_only=True)
        if not torch.equal(old["comp_logits"], out["comp_logits"]):
            raise SystemExit(f"{path} holds another model's outputs; delete it")
        out = old
    replica = copy.deepcopy(comp.module)
    reps = []
    for name, m in list(comp.module.named_modules()):
        if type(m).__name__ == "QuantWrapper":
            reps.append(FloatEquivalent(m))
            replica.set_submodule(name, reps[-1])
    bundle = copy.copy(comp)
    bundle.module = replica
    for mode in modes:
        if mode in out:
            continue
        t = time.time()
        kind = mode.rstrip("0123456789")
        for r in reps:
            r.set(kind, 1000 + int(mode[len(kind):] or 0))
        out[mode] = torch.cat([runner.logits(bundle, data[s].x, split=s) for s in case.splits])
        agree = (out[mode].argmax(-1) == out["comp_logits"].argmax(-1)).double().mean()
        print(f"{mode}: {time.time() - t:.1f} s, agrees with int8 on {agree:.4f}, with the baseline on "
              f"{(out[mode].argmax(-1) == out['base_logits'].argmax(-1)).double().mean():.4f}", flush=True)
        torch.save(out, path)


def sensitivity(D: dict, kind: str, K: int) -> torch.Tensor:
    """(N, 6) columns from K perturbed passes of ``kind`` against the int8 answer (see the module docstring)."""
    pc = torch.softmax(D["comp_logits"].double(), -1)
    pred = pc.argmax(-1)
    P = torch.softmax(torch.stack([D[f"{kind}{k}"].double() for k in range(K)]), -1)   # (K, N, C)
    idx = pred[None, :, None].expand(K, -1, 1)
    kl = (pc[None] * (torch.log(pc[None] + EPS) - torch.log(P + EPS))).sum(-1).mean(0)
    ppred = P.gather(2, idx)[..., 0]
    m = ppred - P.scatter(2, idx, -1.0).max(-1).values
    return torch.stack([(P.argmax(-1) != pred[None]).double().mean(0), kl, torch.log(kl + 1e-9), m.mean(0),
                        m.min(0).values, ppred.std(0)], 1)


def deqfp_columns(D: dict) -> torch.Tensor:
    pc = torch.softmax(D["comp_logits"].double(), -1)
    pred = pc.argmax(-1)
    p = torch.softmax(D["deqfp"].double(), -1)
    kl = (pc * (torch.log(pc + EPS) - torch.log(p + EPS))).sum(-1)
    return torch.stack([(p.argmax(-1) != pred).double(), torch.log(kl + 1e-9),
                        p.gather(1, pred[:, None])[:, 0] - p.scatter(1, pred[:, None], -1.0).max(-1).values], 1)


def variants(D: dict) -> dict:
    have = lambda kind: sum(1 for k in D if k.rstrip("0123456789") == kind and k != kind)  # noqa: E731
    out: dict = {"logits only": None}
    if "deqfp" in D:
        out["deqfp"] = deqfp_columns(D)
    for kind in ("w", "W", "a", "wa"):
        n = have(kind)
        for K in sorted({k for k in (2, 4, 8, 16) if k <= n} | ({n} if n else set())):
            out[f"sens_{kind} K={K}"] = sensitivity(D, kind, K)
    kinds = [k for k in ("w", "W", "a", "wa") if have(k)]
    if len(kinds) > 1:  # every cached pass: each kind at its largest K
        label = f"sens_{'+'.join(f'{k}{have(k)}' for k in kinds)}"
        out[label] = torch.cat([sensitivity(D, k, have(k)) for k in kinds], 1)
    if all(have(k) >= 8 for k in ("w", "a", "wa")):
        out["sens_w+a+wa K=8"] = torch.cat([sensitivity(D, k, 8) for k in ("w", "a", "wa")], 1)
        p = torch.softmax(D["comp_logits"].double(), -1).topk(2, -1).values
        out["sens_w+a+wa K=8 x margin"] = torch.cat([out["sens_w+a+wa K=8"],
                                                    out["sens_w+a+wa K=8"] * (p[:, 0] - p[:, 1])[:, None]], 1)
    return out


def register() -> None:
    from uqcompress.uncertainty import SCORERS
    from uqcompress.uncertainty.flip_aware import FlipAware, flip_features

    @SCORERS.register("flip_sens")
    class FlipSens(FlipAware):
        """flip_aware (logits only) + extra columns carried in ``Outputs.features``; ``model``: lr | gbm."""

        name = "flip_sens"

        def __init__(self, model: str = "lr", extra: bool = True, **kw) -> None:
            super().__init__(features=False, **kw)
            self.model, self.extra = model, extra

        def _inputs(self, out):
            x = flip_features(out.logits, self.temperature)
            return torch.cat([x, out.features.double()], 1) if self.extra else x

        def fit(self, calibration, fit=None):
            if self.model == "lr":
                return super().fit(calibration, fit)
            from sklearn.ensemble import HistGradientBoostingClassifier
            from sklearn.model_selection import StratifiedKFold

            flip = (calibration.logits.argmax(-1) != calibration.reference).numpy()
            x = self._inputs(calibration).numpy()
            oof, self.gbms = np.zeros(len(x)), []
            for tr, te in StratifiedKFold(self.folds, shuffle=True, random_state=self.seed).split(x, flip):
                g = HistGradientBoostingClassifier(max_iter=150, learning_rate=0.05, max_leaf_nodes=15,
                                                   min_samples_leaf=20, l2_regularization=1.0,
                                                   class_weight="balanced", random_state=self.seed).fit(x[tr], flip[tr])
                oof[te] = -g.decision_function(x[te])
                self.gbms.append(g)
            self._calibration_scores, self.selection_rows = torch.from_numpy(oof), None
            self.weight, self.fallback = torch.zeros(1), False
            return self

        def confidence(self, out, probs):
            if self.model == "lr":
                return super().confidence(out, probs)
            x = self._inputs(out).numpy()
            return torch.from_numpy(-np.mean([g.decision_function(x) for g in self.gbms], 0))


def evaluate(path: Path, wanted: list[str] | None, seeds: range) -> None:
    import logging

    import bench_flip_aware as B

    logging.getLogger("uqcompress").setLevel(logging.ERROR)
    register()
    D = torch.load(path, weights_only=True)
    pooled = {k: D[k] for k in ("base_logits", "comp_logits", "labels", "is_test")}
    n_cal = int((~pooled["is_test"]).sum())
    flips = (pooled["base_logits"].argmax(-1) != pooled["comp_logits"].argmax(-1)).double().mean()
    print(f"{len(pooled['labels'])} pooled, {n_cal} calibration per resplit, disagreement {flips:.4f} (flip-catch "
          f"at 90% coverage is at most ~{0.1 / flips:.2f}); seeds {seeds.start}..{seeds.stop - 1}", flush=True)
    res = {}

    def run(label, cfg, extra):
        p = dict(pooled)
        if extra is not None:
            p["comp_features"], p["comp_mc"] = extra.float(), torch.softmax(p["comp_logits"], -1)[None]
        rows = [B.one_resplit(p, n_cal, s, cfg) for s in seeds]
        res[label] = {k: np.array([r[k] for r in rows]) for k in rows[0]}
        r = res[label]
        print(f"| {label} | {r['flip_catch'].mean():.3f} ± {r['flip_catch'].std():.3f} | "
              f"{r['deferral_99'].mean():.3f} ± {r['deferral_99'].std():.3f} | {r['selective_risk'].mean():.4f} | "
              f"{r['fit_s'].mean():.2f} |", end="", flush=True)

    print("| scorer | flip-catch @ 90% | deferral 99% (oracle) | selective risk | fit (s) | flip-catch - best "
          "softmax (paired) | deferral - lowest softmax (paired) |\n|---|---|---|---|---|---|---|")
    for s in ("msp", "entropy", "margin"):
        run(s, {"name": s}, None)
        print(" | | |")
    best = max(("msp", "entropy", "margin"), key=lambda k: res[k]["flip_catch"].mean())
    low = np.min([res[k]["deferral_99"] for k in ("msp", "entropy", "margin")], 0)
    for name, x in variants(D).items():
        for model in ("lr", "gbm"):
            label = f"{model}: {name}"
            if wanted and label not in wanted:
                continue
            run(label, {"name": "flip_sens", "model": model, "extra": x is not None}, x)
            fc, dd = res[label]["flip_catch"] - res[best]["flip_catch"], res[label]["deferral_99"] - low
            print(f" {fc.mean():+.3f} ± {fc.std():.3f} (vs {best}) | {dd.mean():+.3f} ± {dd.std():.3f} |", flush=True)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("step", choices=("collect", "eval"))
    ap.add_argument("--cache", default="/tmp/h28/minilm_sens.pt")
    ap.add_argument("--modes", default=",".join(["deq", "deqfp"] + [f"{m}{k}" for k in range(8)
                                                                   for m in ("w", "a", "wa")]))
    ap.add_argument("--variants", default=None, help="comma-separated labels, e.g. 'lr: sens_w K=8' (default all)")
    ap.add_argument("--seeds", default="0:20", help="resplit seeds start:stop")
    args = ap.parse_args()
    torch.set_num_threads(1)
    from uqcompress._compat import install_shim

    install_shim()
    if args.step == "collect":
        collect(Path(args.cache), args.modes.split(","))
    else:
        a, b = map(int, args.seeds.split(":"))
        evaluate(Path(args.cache), args.variants.split(",") if args.variants else None, range(a, b))


if __name__ == "__main__":
    main()
