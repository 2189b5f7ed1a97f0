"""CPU int4 weight-only passes: torchao's per-matmul dequantization vs once per pass, SmolLM2 on knowledge probes.

    PYTHONPATH=. .venv/bin/python scripts/bench_int4_pass.py [--probes 128] [--rounds 3] [--threads 1] [--clock cpu]

``quant=int4_weight_only`` on CPU holds each Linear weight as torchao's ``IntxUnpackedToInt8Tensor``, whose linear
rebuilds the float weight on every call; a multiple-choice pass calls the decoder twice per chunk of
``model.chunk_size`` questions. ``Runner`` now swaps in each dequantized weight once per pass
(:func:`uqcompress.compress.weight_only.dequantized_for_pass`). Here both ways score the same ``--probes`` test
probes, ``--rounds`` times in alternating order, on this thread's CPU clock (``--clock cpu``, with ``--threads 1``: every op
runs on this thread, so load from other processes does not count) or the wall clock (``--clock wall``: what a user
waits, e.g. with ``--threads 2`` on a busy machine, where each of the dequantization's many small parallel ops waits
for a core); the fp32 baseline's pass is timed beside them. Prints the median
seconds per pass, the ratio old/new measured in this run, and whether the logits are bit-identical.
"""
from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
import warnings
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "scripts")]


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--probes", type=int, default=128)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--clock", choices=("cpu", "wall"), default="cpu")
    args = ap.parse_args(argv)
    clock = time.thread_time if args.clock == "cpu" else time.perf_counter
    warnings.simplefilter("ignore")
    torch.set_num_threads(args.threads)
    import bench_flip_aware as B
    from uqcompress.runner import Runner

    cfg = B.compose(("model=smollm2", "data=knowledge", "quant=int4_weight_only", f"limit={args.probes}"))
    _, data, base, int4 = B.build_pair(cfg)
    x = data["test"].x
    runners = {"per matmul (torchao)": Runner("cpu", progress=False, dequantize_per_pass=False),
               "once per pass": Runner("cpu", progress=False)}
    times: dict[str, list[float]] = {k: [] for k in (*runners, "fp32 baseline")}
    out: dict[str, torch.Tensor] = {}
    for r in range(args.rounds):
        order = list(runners) if r % 2 == 0 else list(reversed(runners))
        for name in order:
            t = clock()
            out[name] = runners[name].logits(int4, x, split="bench")
            times[name].append(clock() - t)
        t = clock()
        runners["once per pass"].logits(base, x, split="bench")
        times["fp32 baseline"].append(clock() - t)
    print(f"SmolLM2 int4_weight_only (CPU), {len(x)} knowledge probes, chunk_size={cfg['model'].get('chunk_size')}, "
          f"threads={torch.get_num_threads()}, {args.rounds} rounds, {args.clock} clock, load {os.getloadavg()[0]:.1f}")
    med = {k: statistics.median(v) for k, v in times.items()}
    for k, v in med.items():
        print(f"  {k:22s} {v:7.2f} s per pass  ({', '.join(f'{t:.2f}' for t in times[k])})")
    old, new = med["per matmul (torchao)"], med["once per pass"]
    print(f"  old / new: {old / new:.2f}x; int4 / fp32: {old / med['fp32 baseline']:.2f}x before, "
          f"{new / med['fp32 baseline']:.2f}x after")
    same = torch.equal(out["per matmul (torchao)"], out["once per pass"])
    print(f"  logits bit-identical: {same}")
    return 0 if same else 1


if __name__ == "__main__":
    raise SystemExit(main())
