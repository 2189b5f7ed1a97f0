"""Throughput of EfficientNet-Lite0 (ImageNet weights + a 10-class head) on CPU: fp32 NCHW, fp32 channels-last
weights (what ``model=efficientnet_lite0`` uses) and int8 static FX, per input size; prints img/s and ratios.

Timing is interleaved (one batch of each variant per round, order rotated), so load from other processes hits all
alike; the best round of each is reported (robust on a shared machine). Inputs are random 3x32x32 images resized
inside the module, as CIFAR-10 is.

Usage:
    PYTHONPATH=. python scripts/bench_vision.py                    # sizes 128,160,224; batch 32; 3 rounds
    PYTHONPATH=. python scripts/bench_vision.py --sizes 160 --rounds 5 --threads 2
"""
from __future__ import annotations

import argparse
import copy
import sys
import time
import warnings
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from uqcompress.compress import compress  # noqa: E402
from uqcompress.models.base import ModelBundle  # noqa: E402
from uqcompress.models.efficientnet_lite import lite0_pretrained  # noqa: E402
from uqcompress.models.heads import ImageClassifier  # noqa: E402


def variants(size: int, calib: torch.Tensor) -> dict[str, torch.nn.Module]:
    pre = lite0_pretrained()
    base = ImageClassifier(pre.backbone, pre.num_features, 10, image_size=size, input_size=32, mean=pre.mean,
                           std=pre.std).eval()
    cl = copy.deepcopy(base).to(memory_format=torch.channels_last)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        q = compress(ModelBundle(cl, "efficientnet_lite0", "bench", "image", 10), {"name": "int8"}, calib).module
    return {"fp32": base, "fp32_channels_last": cl, "int8": q}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sizes", default="128,160,224")
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--threads", type=int, default=None)
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    g = torch.Generator().manual_seed(0)
    x = torch.rand(args.batch, 3, 32, 32, generator=g)
    calib = torch.rand(64, 3, 32, 32, generator=g)
    print(f"threads={torch.get_num_threads()} batch={args.batch} rounds={args.rounds}")
    for size in [int(s) for s in args.sizes.split(",")]:
        mods = variants(size, calib)
        best = {k: float("inf") for k in mods}
        names = list(mods)
        with torch.inference_mode():
            for m in mods.values():
                m(x[:4])  # warm-up
            for r in range(args.rounds):
                for k in names[r % len(names):] + names[: r % len(names)]:
                    t0 = time.perf_counter()
                    mods[k](x)
                    best[k] = min(best[k], time.perf_counter() - t0)
        ips = {k: args.batch / t for k, t in best.items()}
        row = "  ".join(f"{k} {v:6.1f} img/s" for k, v in ips.items())
        print(f"{size:4d}px  {row}  | channels_last/fp32 {ips['fp32_channels_last'] / ips['fp32']:.2f}x  "
              f"int8/fp32_channels_last {ips['int8'] / ips['fp32_channels_last']:.2f}x", flush=True)


if __name__ == "__main__":
    main()
