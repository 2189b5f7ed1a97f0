"""Benchmark every compression scheme against its fp32 baseline: size ratio, CPU latency ratio, accuracy delta.

Models:
* ``small_cnn``: the embedded default (trained on MNIST's fit split; cached after the first run).
* ``resnet18``: torchvision ResNet-18 at 32x32 (MNIST digits resized to 3x32x32). No pretrained weights are
  reachable offline, so its convolutions are random with BatchNorm statistics re-estimated on the fit split and
  its head is a linear probe fit on those features: a real 11M-parameter network whose accuracy means something.

Latency: the baseline and every compressed model timed *interleaved* by ``Runner.latency`` (one block of each per
round, order rotated), ``--repeats`` rounds after warm-up, so load from other processes hits all alike; the ratio
uses the median round of each. The ``none`` row times the fp32 model against itself: its ratio is the measurement
noise. Size: bytes of the
serialized state_dict. Accuracy: on the first ``--n-eval`` test samples.

Usage:
    PYTHONPATH=. python scripts/bench_compression.py                      # all schemes, both models (< 3 min)
    PYTHONPATH=. python scripts/bench_compression.py --models small_cnn --schemes int8,int8_dynamic
"""
from __future__ import annotations

import argparse
import logging
import sys
import time
import warnings
from pathlib import Path

import torch
from torch import nn

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from uqcompress.compress import SCHEMES, CompressContext, compress  # noqa: E402
from uqcompress.data import conform_images, load_dataset  # noqa: E402
from uqcompress.measure import state_dict_bytes  # noqa: E402
from uqcompress.models import BuildContext, build_model  # noqa: E402
from uqcompress.models.base import ModelBundle  # noqa: E402
from uqcompress.runner import Runner  # noqa: E402

SCHEME_CFGS = {
    "none": {},  # control row: the fp32 model timed again; its latency ratio shows the measurement noise
    "fp16": {}, "bf16": {}, "int8": {"calibration_samples": 256}, "int8_dynamic": {}, "int8_weight_only": {},
    "int4_weight_only": {"group_size": 32}, "brevitas_w8a8": {"calibration_samples": 64},
    "brevitas_w4a8": {"calibration_samples": 64}, "brevitas_w4a4": {"calibration_samples": 64},
    "prune_global_l1": {"amount": 0.5}, "prune_2of4": {},
    "prune_int8": {"steps": [{"name": "prune_global_l1", "amount": 0.5}, {"name": "int8", "calibration_samples": 256}]},
    "chain": {"steps": [{"name": "prune_2of4"}, {"name": "int8_dynamic"}]},
}


def small_cnn(data) -> ModelBundle:
    from omegaconf import OmegaConf

    cfg = OmegaConf.to_container(OmegaConf.load(Path(__file__).resolve().parents[1] / "conf/model/small_cnn.yaml"))
    return build_model(cfg, data, BuildContext(seed=0, progress=False))


def resnet18_probe(data, seed: int = 0) -> tuple[ModelBundle, object]:
    """ResNet-18 (random convs, BN stats from data, linear-probe head) on 3x32x32 MNIST."""
    from uqcompress._compat import ensure_torchvision

    tv = ensure_torchvision()
    torch.manual_seed(seed)
    net = tv.models.resnet18(num_classes=data.num_classes)
    x_fit = conform_images(data["fit"].x[:512], (3, 32, 32))
    y_fit = data["fit"].y[:512]
    with torch.no_grad():  # BatchNorm statistics of these inputs, so activations have realistic ranges
        net.train()
        for mod in net.modules():
            if isinstance(mod, nn.BatchNorm2d):
                mod.momentum = None  # cumulative average
                mod.reset_running_stats()
        for i in range(0, len(x_fit), 128):
            net(x_fit[i : i + 128])
        net.eval()
        net.fc = nn.Identity()
        feats = torch.cat([net(x_fit[i : i + 256]) for i in range(0, len(x_fit), 256)])
    mu, sd = feats.mean(0), feats.std(0) + 1e-6
    head = nn.Linear(feats.shape[1], data.num_classes)
    opt = torch.optim.LBFGS(head.parameters(), max_iter=200, line_search_fn="strong_wolfe")
    z = (feats - mu) / sd

    def closure():
        opt.zero_grad()
        loss = nn.functional.cross_entropy(head(z), y_fit) + 1e-3 * head.weight.pow(2).sum()
        loss.backward()
        return loss

    opt.step(closure)
    fc = nn.Linear(feats.shape[1], data.num_classes)
    with torch.no_grad():  # fold the standardisation into the head
        fc.weight.copy_(head.weight / sd)
        fc.bias.copy_(head.bias - (head.weight * mu / sd).sum(1))
    net.fc = fc
    prep = (lambda x: conform_images(x, (3, 32, 32)))
    return ModelBundle(net.eval(), "resnet18", f"resnet18-probe-{seed}", "image", data.num_classes, prepare=prep,
                       head="fc"), prep


def accuracy(bundle: ModelBundle, x, y, batch: int = 250) -> float:
    pred = Runner(batch_size=batch, progress=False).logits(bundle, x).argmax(-1)
    return float((pred == y).double().mean())


def bench_model(name: str, base: ModelBundle, data, schemes: list[str], args) -> list[dict]:
    """Compress with every scheme, score accuracy, then time baseline and all compressed models interleaved."""
    test = data["test"]
    x_eval, y_eval = test.x[: args.n_eval], test.y[: args.n_eval]
    calib = data["calibration"].x
    base_acc = accuracy(base, x_eval, y_eval)
    base_size = state_dict_bytes(base.module)
    print(f"\n## {name}: fp32 baseline accuracy {base_acc:.4f} on {len(y_eval)} test samples, "
          f"state_dict {base_size:,} bytes, threads {torch.get_num_threads()}, latency batch {args.batch_size}")
    rows, bundles = {}, {"fp32": base}
    for scheme in schemes:
        cfg = {"name": scheme, **SCHEME_CFGS.get(scheme, {})}
        t0 = time.perf_counter()
        try:
            comp = compress(base, cfg, calib, CompressContext(progress=False, batch_size=64))
        except ValueError as e:
            print(f"{scheme:18s} not applicable: {e}")
            continue
        rows[scheme] = {
            "model": name, "scheme": scheme, "compress_s": time.perf_counter() - t0,
            "size_ratio": state_dict_bytes(comp.module) / base_size,
            "acc_delta": accuracy(comp, x_eval, y_eval) - base_acc, "bits": comp.info.get("bits"),
            "sparsity": comp.info.get("sparsity"), "simulated": comp.info.get("simulated"),
        }
        bundles[scheme] = comp
    timing = Runner(progress=False).latency(bundles, test.x, batch_size=args.batch_size, repeats=args.repeats,
                                            warmup=args.warmup)
    lat = {k: v["latency_ms_per_sample"] for k, v in timing.items()}
    print(HEADER)
    for scheme, r in rows.items():
        r.update(base_ms=lat["fp32"], comp_ms=lat[scheme], latency_ratio=lat[scheme] / lat["fp32"])
        print(_fmt(r), flush=True)
    return list(rows.values())


HEADER = (f"{'scheme':18s} {'size×':>6s} {'latency×':>8s} {'ms/sample base→comp':>20s} {'acc Δ':>7s} {'bits':>4s} "
          f"{'sparsity':>8s} {'simulated':>9s} {'compress s':>10s}")


def _fmt(r: dict) -> str:
    sp = "" if r["sparsity"] is None else f"{r['sparsity']:.3f}"
    ms = f"{r['base_ms']:.3f}→{r['comp_ms']:.3f}"
    return (f"{r['scheme']:18s} {r['size_ratio']:6.3f} {r['latency_ratio']:8.3f} {ms:>20s} {r['acc_delta']:+7.4f} "
            f"{r['bits']!s:>4s} {sp:>8s} {r['simulated']!s:>9s} {r['compress_s']:10.2f}")


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--models", default="small_cnn,resnet18")
    p.add_argument("--schemes", default=",".join(SCHEME_CFGS))
    p.add_argument("--n-eval", type=int, default=300)
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--repeats", type=int, default=7)
    p.add_argument("--warmup", type=int, default=2)
    p.add_argument("--threads", type=int, default=None)
    args = p.parse_args(argv)
    logging.basicConfig(level=logging.WARNING)
    warnings.simplefilter("ignore")
    if args.threads:
        torch.set_num_threads(args.threads)
    schemes = [s for s in args.schemes.split(",") if s]
    for s in schemes:
        SCHEMES.get(s)  # unknown name: one line with the choices
    builders = {"small_cnn": lambda d: small_cnn(d), "resnet18": lambda d: resnet18_probe(d)[0]}
    models = [m for m in args.models.split(",") if m]
    for m in models:
        if m not in builders:
            raise SystemExit(f"--models: '{m}' is not one of: {', '.join(builders)}")
    t_start, c_start = time.perf_counter(), time.process_time()
    data = load_dataset({"name": "mnist"}, 0)
    rows = []
    for m in models:
        t0 = time.perf_counter()
        base = builders[m](data)
        print(f"\n(built {m} in {time.perf_counter() - t0:.1f} s)")
        rows += bench_model(m, base, data, schemes, args)
    print(f"\nsize× = compressed/fp32 state_dict bytes; latency× = compressed/fp32 ms per sample (CPU, interleaved, "
          f"median of {args.repeats}); total {time.perf_counter() - t_start:.0f} s wall, "
          f"{time.process_time() - c_start:.0f} s CPU")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
