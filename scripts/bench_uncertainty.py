"""Cost of uncertainty, as ratios to one plain forward pass of the same model on the same inputs.

* MC-dropout ``head`` mode (backbone once, T dropout samples on the head) vs ``full`` mode (T forward passes);
* SelectivePredictor.predict overhead over the bare model for single-pass scorers (per batch size and in absolute
  time: ``scripts/bench_predictor.py``).

Float and int8 (torch.ao FX) small_cnn on MNIST-sized inputs; weights are untrained (cost does not depend on them).
Each ratio is the median over adjacent (plain, candidate) pairs, their order alternating, so that the load of a
shared machine hits both sides alike. One CPU thread by default: on a loaded 2-core machine multi-threaded timings
are dominated by scheduling noise.

    PYTHONPATH=$PWD python scripts/bench_uncertainty.py [--n 256] [--samples 30] [--pairs 9] [--threads 1]
"""
from __future__ import annotations

import argparse
import statistics
import time
import warnings
from typing import Callable

import torch

from uqcompress.compress import compress
from uqcompress.models import MODELS
from uqcompress.models.base import call_module
from uqcompress.predictor import SelectivePredictor
from uqcompress.runner import Runner
from uqcompress.selection import build_selector
from uqcompress.uncertainty import build_scorer
from uqcompress.uncertainty.mc import MCOptions


def once(fn: Callable[[], object]) -> float:
    t0 = time.perf_counter()
    fn()
    return time.perf_counter() - t0


def paired_ratio(base: Callable, cand: Callable, pairs: int) -> tuple[float, float]:
    """(median of cand/base over adjacent pairs, fastest base time in s); one warm-up of each first."""
    base(), cand()
    ratios, bases = [], []
    for i in range(pairs):
        if i % 2:
            c, b = once(cand), once(base)
        else:
            b, c = once(base), once(cand)
        ratios.append(c / b)
        bases.append(b)
    return statistics.median(ratios), min(bases)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=256, help="samples per measurement")
    ap.add_argument("--samples", type=int, default=30, help="T, MC-dropout passes")
    ap.add_argument("--batch-size", type=int, default=256)
    ap.add_argument("--pairs", type=int, default=9, help="timed pairs per ratio (full mode: a third of them)")
    ap.add_argument("--threads", type=int, default=1, help="torch CPU threads (0 = torch default)")
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    x = torch.rand(args.n, 1, 28, 28)
    base = MODELS.get("small_cnn").rebuild_architecture({}, 10, (1, 28, 28))
    runner = Runner("cpu", args.batch_size, progress=False)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        models = {"float": base, "int8": compress(base, {"name": "int8"}, torch.rand(256, 1, 28, 28))}
    print(f"small_cnn, N={args.n}, batch={args.batch_size}, T={args.samples}, threads={torch.get_num_threads()}, "
          f"median ratio over {args.pairs} alternating pairs")
    for name, b in models.items():
        def plain():
            with torch.inference_mode():
                for i in range(0, len(x), args.batch_size):
                    call_module(b.module, b.prepare(x[i : i + args.batch_size]))

        head, t_plain = paired_ratio(
            plain, lambda: runner.mc_probs(b, x, MCOptions(samples=args.samples, mode="head")),
            args.pairs)
        full, _ = paired_ratio(
            plain, lambda: runner.mc_probs(b, x, MCOptions(samples=args.samples, mode="full")),
            max(1, args.pairs // 3))
        print(f"[{name}] plain pass {1000 * t_plain:7.1f} ms | MC head T={args.samples}: {head:5.2f}x | "
              f"MC full T={args.samples}: {full:5.2f}x (ideal {args.samples}x)")
        for scorer in ("msp", "temperature", "energy"):
            pred = SelectivePredictor(b, build_scorer({"name": scorer, "temperature": 1.3}),
                                      build_selector({"name": "threshold", "value": 0.5}), batch_size=args.batch_size)
            ratio, _ = paired_ratio(plain, lambda: pred.predict(x), args.pairs)
            with torch.inference_mode():
                z = call_module(b.module, x[: args.batch_size])
            post = min(once(lambda: pred.selector.accept(pred.scorer.score(z))) for _ in range(20))
            print(f"[{name}] SelectivePredictor({scorer}) / bare model: {ratio:5.3f}x "
                  f"(overhead {100 * (ratio - 1):+.1f}%; scorer + selector alone: {1000 * post:.2f} ms "
                  f"= {100 * post / t_plain:.2f}% of a pass)")


if __name__ == "__main__":
    main()
