"""Benchmark (issue 28): does ``uncertainty=flip_aware`` catch the answers compression changed better than the
softmax scorers and MC-dropout?

For each case one pipeline pass (cached) collects, for the baseline and the compressed model, the logits of the
calibration and test splits, and for the compressed model its penultimate features (for the class means of
flip_aware, taken from the calibration half it is fit on) and its MC-dropout passes (``mode=head``, 30 samples).
Calibration + test are then pooled and resplit R times (default 20, seeded) into calibration / test halves of the
original sizes (a case that pools one split, EfficientNet-Lite0's 5,000 calibration images, is resplit into halves);
on each resplit every scorer is fit on the calibration half only (flip_aware: the baseline's calibration answers are
its training target; the test half's baseline answers are never passed to it), the ``coverage`` selector (target 0.9)
picks its threshold there, and on the test half we record:

* flip-catch: of the test inputs whose compressed answer differs from the baseline's, the share abstained on;
* deferral for 99% agreement: the smallest share of the least confident test inputs that, deferred to the baseline,
  makes the cascade agree with the baseline on >= 99% of the test inputs (:func:`uqcompress.metrics.
  deferral_for_agreement`, an oracle on the test half: it compares the scorers' rankings, not a calibrated selector);
* the deferral ``agreement_guarantee`` (target 0.01, delta 0.1) picks on the calibration half, and the agreement
  the cascade then reaches on the test half;
* selective risk (error rate among accepted test inputs) at the chosen threshold;
* fit time of the scorer (s, wall).

Usage:
    PYTHONPATH=. .venv/bin/python scripts/bench_flip_aware.py                  # both cases, 20 resplits
    PYTHONPATH=. .venv/bin/python scripts/bench_flip_aware.py --cases minilm --resplits 5
    PYTHONPATH=. .venv/bin/python scripts/bench_flip_aware.py --collect-only   # fill the cache only
"""
from __future__ import annotations

import argparse
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from uqcompress._compat import install_shim  # noqa: E402

install_shim()

from uqcompress.cache import cached, fingerprint  # noqa: E402

MC = {"samples": 30, "mode": "head", "p": 0.1, "seed": 0}


@dataclass(frozen=True)
class Case:
    label: str
    overrides: tuple[str, ...]
    extras: bool = True   # collect the compressed model's features and MC passes (else logits only)
    splits: tuple[str, ...] = ("calibration", "test")   # pooled; one split is resplit into halves


CASES = {
    # logits only, calibration split only: Lite0 at 160 px on a shared 2-core CPU took 23 min per 10,000 images
    # (fp32); features and MC passes of the int8 model and the test split's fp32 pass did not fit the time we had
    "lite0": Case("EfficientNet-Lite0 int8, Fashion-MNIST", ("model=efficientnet_lite0", "data=fashion_mnist",
                                                              "quant=int8"), extras=False,
                  splits=("calibration",)),   # the default 5,000 calibration images, resplit 2,500 / 2,500
    "minilm": Case("MiniLM int8, TREC", ("model=minilm", "data=trec", "quant=int8")),
}


def compose(overrides: tuple[str, ...]) -> dict:
    """The CLI's config for ``overrides`` (no OOD set)."""
    from hydra import compose as hydra_compose, initialize_config_dir
    from omegaconf import OmegaConf

    with initialize_config_dir(config_dir=str(ROOT / "uqcompress" / "conf"), version_base=None):
        cfg = hydra_compose("config", overrides=[*overrides, "ood=none", "progress=false", "plots=false"])
    return OmegaConf.to_container(cfg, resolve=True)


def build_pair(cfg: dict) -> tuple:
    """``(runner, data, baseline, compressed)`` of a composed config, as the pipeline builds them (shared with
    scripts/bench_flip_sensitivity.py)."""
    from uqcompress.compress import CompressContext, compress
    from uqcompress.models import BuildContext, build_model
    from uqcompress.pipeline import DEFAULTS, _merge, load_data, start_run

    c = _merge(DEFAULTS, cfg)
    runner = start_run(c)
    data, _ = load_data(c)
    base = build_model(dict(c["model"]), data, BuildContext(c["seed"], str(runner.device), False, runner))
    runner.place(base)
    comp = compress(base, dict(c["quant"]), data["calibration"].x,
                    CompressContext(c["seed"], str(runner.device), False, runner=runner))
    return runner, data, base, comp


def collect(case: Case) -> dict:
    """Both models' outputs on calibration + test (pooled, ``is_test`` marks the original test split; the compressed
    model's with features and MC passes), cached."""
    cfg = compose(case.overrides)
    key = fingerprint("flip-study-v1", MC, case.extras, case.splits,
                      {k: v for k, v in cfg.items() if k not in ("progress", "plots")})

    def run() -> dict:
        runner, data, base, comp = build_pair(cfg)
        out: dict = {}
        extras = frozenset({"features", "mc"}) if case.extras else frozenset()
        for who, bundle, needs in (("base", base, frozenset()), ("comp", comp, extras)):
            parts = [runner.outputs(bundle, s, data[s], needs, MC) for s in case.splits]
            out[f"{who}_logits"] = torch.cat([p.logits for p in parts])
            if who == "comp" and case.extras:
                out["comp_features"] = torch.cat([p.features for p in parts])
                out["comp_mc"] = torch.cat([p.mc_probs for p in parts], dim=1)
        out["labels"] = torch.cat([data[s].y for s in case.splits]).long()
        out["is_test"] = torch.arange(len(out["labels"])) >= len(data["calibration"])
        return out

    return cached("flip_study", key, run)


#: label -> (scorer config, needs the compressed model's features / MC passes)
SCORERS = {
    "msp": ({"name": "msp"}, False),
    "entropy": ({"name": "entropy"}, False),
    "margin": ({"name": "margin"}, False),
    "mc_dropout": ({"name": "mc_dropout", "score": "mi", **MC}, True),
    "flip_aware (logits only)": ({"name": "flip_aware", "features": False}, False),
    "flip_aware": ({"name": "flip_aware"}, True),
    "flip_aware+mc": ({"name": "flip_aware", "mc": True, **{k: MC[k] for k in ("samples", "p", "mode")}}, True),
}


def one_resplit(pooled: dict, n_cal: int, seed: int, scorer_cfg: dict) -> dict:
    """Fit on a seeded calibration draw, measure on the rest (the test half)."""
    from uqcompress import metrics as M
    from uqcompress.pipeline import score_outputs
    from uqcompress.selection import build_selector
    from uqcompress.uncertainty import build_scorer
    from uqcompress.uncertainty.base import Outputs

    n = len(pooled["labels"])
    perm = torch.from_numpy(np.random.default_rng(seed).permutation(n))
    idx = {"calibration": perm[:n_cal], "test": perm[n_cal:]}
    base_pred = pooled["base_logits"].argmax(-1)

    def outs(rows):
        if "comp_mc" not in pooled:
            return Outputs(pooled["comp_logits"][rows], pooled["labels"][rows])
        return Outputs(pooled["comp_logits"][rows], pooled["labels"][rows], pooled["comp_mc"][:, rows],
                       pooled["comp_features"][rows])

    ref = {k: base_pred[r] for k, r in idx.items()}
    res = {}
    for sel_cfg, tag in (({"name": "coverage", "target": 0.9}, ""), ({"name": "agreement_guarantee", "target": 0.01,
                                                                     "delta": 0.1}, "ag_")):
        scorer = build_scorer(dict(scorer_cfg))
        fit = scorer.fit
        took = []

        def timed(*a, **k):
            t = time.perf_counter()
            r = fit(*a, **k)
            took.append(time.perf_counter() - t)
            return r

        scorer.fit = timed
        ev = score_outputs({k: outs(r) for k, r in idx.items()}, scorer, build_selector(sel_cfg), None, ref)
        comp_pred = ev.probs["test"].argmax(-1)
        disagree = (comp_pred != ref["test"]).numpy()
        acc = ev.accept["test"].numpy()
        conf = ev.confidence["test"].numpy()
        if tag:
            res["ag_deferral"] = float(1 - acc.mean())
            res["ag_agreement"] = float(1 - (disagree & acc).mean())   # cascade: deferred inputs get the baseline
            continue
        y = pooled["labels"][idx["test"]].numpy()
        res["flip_catch"] = float((~acc[disagree]).mean()) if disagree.any() else float("nan")
        res["coverage"] = float(acc.mean())
        res["selective_risk"] = float((comp_pred.numpy() != y)[acc].mean())
        res["deferral_99"] = M.deferral_for_agreement(ref["test"].numpy(), comp_pred.numpy(), y, conf)["deferral_rate"]
        res["fit_s"] = took[0]
        res["disagreement"] = float(disagree.mean())
    return res


def run_case(name: str, resplits: int) -> dict:
    pooled = collect(CASES[name])
    n_cal = int((~pooled["is_test"]).sum())
    if n_cal == len(pooled["labels"]):  # one split pooled: resplit it into halves
        n_cal //= 2
    out = {}
    for label, (cfg, extras) in SCORERS.items():
        if extras and not CASES[name].extras:
            continue
        rows = [one_resplit(pooled, n_cal, seed, cfg) for seed in range(resplits)]
        out[label] = {k: [r[k] for r in rows] for k in rows[0]}
        m = {k: float(np.nanmean(v)) for k, v in out[label].items()}
        print(f"  {name} {label:14s} flip-catch {m['flip_catch']:.3f}  deferral@99% {m['deferral_99']:.3f}  "
              f"AG deferral {m['ag_deferral']:.3f}  sel. risk {m['selective_risk']:.4f}  fit {m['fit_s']:.3f} s",
              flush=True)
    out["_info"] = {"n_pooled": len(pooled["labels"]), "n_calibration": n_cal,
                    "disagreement": float((pooled["base_logits"].argmax(-1) != pooled["comp_logits"].argmax(-1))
                                          .double().mean())}
    return out


def table(results: dict) -> str:
    """Markdown table: mean ± standard deviation over the resplits."""
    def ms(v, f=".3f"):
        a = np.asarray(v, dtype=float)
        return f"{np.nanmean(a):{f}} ± {np.nanstd(a):{f}}"

    lines = ["| case | scorer | flip-catch @ 90% cov. | deferral for 99% agreement (oracle) | agreement_guarantee "
             "1%: deferral / agreement | selective risk | fit (s) |", "|---|---|---|---|---|---|---|"]
    for case, res in results.items():
        for label, r in res.items():
            if label.startswith("_"):
                continue
            lines.append(f"| {CASES[case].label} | {label} | {ms(r['flip_catch'])} | {ms(r['deferral_99'])} | "
                         f"{ms(r['ag_deferral'])} / {np.mean(r['ag_agreement']):.4f} | "
                         f"{ms(r['selective_risk'], '.4f')} "
                         f"| {np.mean(r['fit_s']):.3f} |")
    for case, res in results.items():  # paired over resplits: flip_aware minus the best softmax scorer
        best = max(("msp", "entropy", "margin"), key=lambda k: np.nanmean(res[k]["flip_catch"]))
        for label in [k for k in res if k.startswith("flip_aware")]:
            fc = np.asarray(res[label]["flip_catch"]) - np.asarray(res[best]["flip_catch"])
            lowest = np.min([res[k]["deferral_99"] for k in ("msp", "entropy", "margin")], axis=0)
            dd = np.asarray(res[label]["deferral_99"]) - lowest
            lines.append(f"\n{CASES[case].label}: {label} - {best}: flip-catch {np.mean(fc):+.3f} ± {np.std(fc):.3f} "
                         f"(paired, {len(fc)} resplits); deferral for 99% agreement vs the lowest softmax scorer per "
                         f"resplit {np.mean(dd):+.3f} ± {np.std(dd):.3f}")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--cases", default=",".join(CASES))
    ap.add_argument("--resplits", type=int, default=20)
    ap.add_argument("--collect-only", action="store_true")
    ap.add_argument("--out", default=None, help="write the per-resplit numbers as JSON here")
    args = ap.parse_args(argv)
    import json
    import logging

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    torch.set_num_threads(1)  # small (N, K) arrays: one thread beats OpenMP hand-offs on a shared machine
    results = {}
    for name in args.cases.split(","):
        t = time.time()
        pooled = collect(CASES[name])
        print(f"{name}: collected {len(pooled['labels'])} samples in {time.time() - t:.0f} s", flush=True)
        if args.collect_only:
            continue
        logging.getLogger("uqcompress").setLevel(logging.WARNING)
        results[name] = run_case(name, args.resplits)
    if results:
        print(table(results))
        if args.out:
            Path(args.out).write_text(json.dumps(results, indent=1))


if __name__ == "__main__":
    main()
