"""SelectivePredictor.predict vs the bare compressed forward it wraps, per batch size, in one run.

    PYTHONPATH=. python scripts/bench_predictor.py [--batches 1,32] [--threads 1] [--pairs 201] [--clock cpu]

For the embedded default's architecture (small_cnn, 1x28x28; weights do not change the cost) as float32 and as
static int8, with the msp scorer (temperature 1.3) and a threshold selector: the bare forward is
``module(x)`` under ``torch.inference_mode`` (what a user would call), the candidate is ``predict(x)`` (the runner's
pass + scorer + selector + labels). Each timed block repeats the call enough times to last >= 2 ms; ``--pairs``
adjacent (bare, predict) blocks, order alternating. Prints the median times, and the overhead as the median of the
per-pair differences (microseconds per call, and in % of the bare median): on a shared machine the two halves of a
pair see the same load. Targets (issues 15, 29): < 5% at batch 32, < 0.1 ms per call at batch 1. The ``(inline)``
rows time int8 with predict's arithmetic written out and no layers around it (:func:`inline`): the floor of the
overhead, which the ops after a forward pay in full (caches the forward's kernels have just evicted). The load average
is printed with each row. ``--clock cpu`` (default) times with this thread's CPU clock: with one torch thread every op
runs on it, so the time is what a call costs on a core of its own, and the time slices other processes take on a
busy machine are not counted (see ``Runner.latency``).
"""
from __future__ import annotations

import argparse
import math
import os
import statistics
import sys
import time
import warnings
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from uqcompress.compress import compress  # noqa: E402
from uqcompress.models import MODELS  # noqa: E402
from uqcompress.predictor import SelectivePredictor  # noqa: E402
from uqcompress.selection import build_selector  # noqa: E402
from uqcompress.uncertainty import build_scorer  # noqa: E402


CLOCK = {"cpu": time.thread_time, "wall": time.perf_counter}
clock = CLOCK["cpu"]


def block(fn, number: int) -> float:
    t0 = clock()
    for _ in range(number):
        fn()
    return (clock() - t0) / number


def paired(bare, cand, pairs: int, min_s: float = 0.002) -> tuple[float, float, float]:
    """(median bare seconds per call, median candidate seconds per call, median of the per-pair differences) over
    ``pairs`` adjacent (bare, candidate) blocks, order alternating. Blocks are short (>= ``min_s``, a few calls) so
    both halves of a pair see the same load on a shared machine; the median of the differences ignores the pairs a
    burst of load hit."""
    for _ in range(3):
        bare(), cand()
    number = max(1, int(min_s / max(block(bare, 3), 1e-7)))
    b, c = [], []
    for i in range(pairs):
        if i % 2:
            c.append(block(cand, number)); b.append(block(bare, number))
        else:
            b.append(block(bare, number)); c.append(block(cand, number))
    return statistics.median(b), statistics.median(c), statistics.median(y - x for x, y in zip(b, c))


def inline(module: torch.nn.Module, x: torch.Tensor, temperature: float = 1.3, threshold: float = 0.5
           ) -> tuple[torch.Tensor, ...]:
    """``predict``'s arithmetic for msp + threshold written out with no layers around it (the forward, the NaN/inf
    check, float64 softmax at the temperature, top probability and label, acceptance, -1 where it abstains): the
    least any predictor with these outputs costs over the bare forward."""
    with torch.inference_mode():
        z = module(x)
    if not math.isfinite(float(z.sum())):
        raise ValueError("NaN/inf logits")
    conf, labels = torch.softmax(z.double() / temperature, dim=-1).max(-1)
    accepted = conf >= threshold
    return torch.where(accepted, labels, -1), conf, accepted


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--batches", default="1,32", help="batch sizes (the Done-when figures are at 1 and 32; 256 adds "
                    "about two minutes, float32 mostly)")
    ap.add_argument("--threads", type=int, default=1, help="torch CPU threads (0 = torch default)")
    ap.add_argument("--pairs", type=int, default=201)
    ap.add_argument("--no-inline", dest="inline", action="store_false",
                    help="skip the '(inline)' rows: int8 with predict's arithmetic written out, no layers (the floor)")
    ap.add_argument("--clock", choices=sorted(CLOCK), default="cpu",
                    help="cpu: this thread's CPU time (with --threads 1 torch runs every op on it: a call's cost on "
                         "a core of its own, steady under load), wall: perf_counter")
    args = ap.parse_args(argv)
    global clock
    clock = CLOCK[args.clock]
    if args.threads:
        torch.set_num_threads(args.threads)
    warnings.simplefilter("ignore")
    torch.manual_seed(0)
    base = MODELS.get("small_cnn").rebuild_architecture({}, 10, (1, 28, 28))
    models = {"float32": base, "int8": compress(base, {"name": "int8"}, torch.rand(256, 1, 28, 28))}
    print(f"small_cnn 1x28x28, threads={torch.get_num_threads()}, {args.clock} clock, {args.pairs} alternating pairs; "
          f"{os.cpu_count()} cores")
    print(f"{'model':8s} {'batch':>5s} {'bare ms':>9s} {'predict ms':>10s} {'overhead':>9s} {'µs/call':>8s} "
          f"{'load':>5s}")
    rows: dict[tuple[str, int], tuple[float, float]] = {}  # (model, batch) -> (bare seconds, overhead seconds)
    for name, b in models.items():
        pred = SelectivePredictor(b, build_scorer({"name": "msp", "temperature": 1.3}),
                                  build_selector({"name": "threshold", "value": 0.5}), batch_size=256)
        module = b.module.eval()
        for n in (int(v) for v in args.batches.split(",")):
            x = torch.rand(n, 1, 28, 28)

            def bare():
                with torch.inference_mode():
                    module(x)

            t_b, t_c, d = paired(bare, lambda: pred.predict(x), args.pairs)
            rows[name, n] = (t_b, d)
            print(f"{name:8s} {n:5d} {1e3 * t_b:9.4f} {1e3 * t_c:10.4f} {100 * d / t_b:+8.1f}% {1e6 * d:8.1f} "
                  f"{os.getloadavg()[0]:5.1f}", flush=True)
            if name == "int8" and args.inline:
                assert all(torch.equal(a, b) for a, b in zip(inline(module, x), pred.predict(x)))  # the same work
                t_b, t_c, d = paired(bare, lambda: inline(module, x), args.pairs)
                print(f"{'(inline)':8s} {n:5d} {1e3 * t_b:9.4f} {1e3 * t_c:10.4f} {100 * d / t_b:+8.1f}% "
                      f"{1e6 * d:8.1f} {os.getloadavg()[0]:5.1f}", flush=True)
    print(f"Done when (issues 15, 29), load average now {os.getloadavg()[0]:.1f}:")
    if ("int8", 1) in rows:
        d = rows["int8", 1][1]
        print(f"  int8 batch 1: +{1e6 * d:.1f} µs per call < 100 µs: {'yes' if d < 1e-4 else 'no'}")
    if ("int8", 32) in rows:
        t_b, d = rows["int8", 32]
        print(f"  int8 batch 32: {100 * d / t_b:+.1f}% < 5%: {'yes' if d / t_b < 0.05 else 'no'}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
