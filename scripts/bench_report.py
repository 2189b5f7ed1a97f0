"""What the report costs a run: the headline intervals (results.json) and the run page, on 2,000 test samples.

    PYTHONPATH=. python scripts/bench_report.py [--n 2000] [--n-boot 1000] [--repeats 5]

1. ``headline_intervals`` (10 headline keys, 1,000 resamples of n test + n OOD samples) vs the same intervals by
   one metric call per resample (``bootstrap_ci`` on a wrapped metric: its generic path), on the same resamples.
   Target (issue 20): < 1 s for 2,000 samples.
2. ``run_page``: the run's self-contained report.html from results.json + predictions.csv + 3 PNGs (+ thumbnails).
Medians over ``--repeats``; on a shared machine expect noise, compare the ratio.
"""
from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
import warnings
from pathlib import Path

import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from uqcompress import metrics as M  # noqa: E402
from uqcompress.report.html import run_page  # noqa: E402
from uqcompress.report.intervals import headline_intervals  # noqa: E402
from uqcompress.report.plots import confidence_hist, reliability, risk_coverage  # noqa: E402
from uqcompress.report.results import write_results  # noqa: E402


def median_time(fn, repeats: int) -> float:
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def data(n: int, k: int = 10, seed: int = 0):
    rng = np.random.default_rng(seed)
    base = rng.dirichlet(np.ones(k) * 0.3, n)
    comp = np.where(rng.random((n, 1)) < 0.05, rng.dirichlet(np.ones(k), n), base)
    y = np.where(rng.random(n) < 0.9, base.argmax(1), rng.integers(0, k, n))
    conf = comp.max(1)
    accept = conf >= np.quantile(conf, 0.1)
    ood = {"baseline": (base.max(1), rng.beta(2, 2, n)), "compressed": (conf, rng.beta(2, 2, n))}
    return y, base, comp, conf, accept, ood


def per_resample(y, base, comp, conf, accept, ood, n_boot):
    """The same intervals with one metric call per resample (bootstrap_ci's generic path)."""
    def slow(fn):
        return lambda *a, **k: fn(*a, **k)

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        M.bootstrap_ci(slow(M.accuracy), base, y, n_boot=n_boot)
        M.bootstrap_ci(slow(M.accuracy), comp, y, n_boot=n_boot)
        M.bootstrap_ci(slow(M.flips), base, comp, y, n_boot=n_boot)
        M.bootstrap_ci(slow(M.selective), conf, comp.argmax(1) == y, accept, n_boot=n_boot)
        for cid, cood in ood.values():
            M.bootstrap_ci(slow(M.auroc), cid, cood, n_boot=n_boot, paired=False)


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--n", type=int, default=2000)
    p.add_argument("--n-boot", type=int, default=1000)
    p.add_argument("--repeats", type=int, default=5)
    args = p.parse_args()
    y, base, comp, conf, accept, ood = data(args.n)
    headline_intervals(y, base, comp, conf, accept, ood, n_boot=50)  # warm-up (imports, first allocations)
    fast = median_time(lambda: headline_intervals(y, base, comp, conf, accept, ood, n_boot=args.n_boot),
                       args.repeats)
    slow = median_time(lambda: per_resample(y, base, comp, conf, accept, ood, args.n_boot), 1)
    print(f"headline intervals, {args.n:,} test + {args.n:,} OOD samples, {args.n_boot} resamples:")
    print(f"  vectorised {fast:.3f} s   one call per resample {slow:.2f} s   ratio x{slow / fast:.0f}")

    with tempfile.TemporaryDirectory() as tmp:
        run = Path(tmp)
        pred = pd.concat([
            pd.DataFrame({"split": "test", "id": [f"test-{i}-0" for i in range(args.n)], "index": range(args.n),
                          "label": y, "baseline_pred": base.argmax(1), "compressed_pred": comp.argmax(1),
                          "baseline_pmax": base.max(1), "compressed_pmax": conf, "baseline_confidence": base.max(1),
                          "compressed_confidence": conf, "baseline_accepted": accept, "compressed_accepted": accept,
                          "input": ["some input text " * 8] * args.n}),
            pd.DataFrame({"split": "ood", "id": [f"ood-{i}-0" for i in range(args.n)], "index": range(args.n),
                          "label": -1, "baseline_pred": 0, "compressed_pred": 0, "baseline_pmax": ood["baseline"][1],
                          "compressed_pmax": ood["compressed"][1], "baseline_confidence": ood["baseline"][1],
                          "compressed_confidence": ood["compressed"][1], "baseline_accepted": True,
                          "compressed_accepted": True, "input": "ood text"})], ignore_index=True)
        write_results(run, {"baseline.accuracy": 0.9, "compressed.accuracy": 0.89,
                            **headline_intervals(y, base, comp, conf, accept, ood, n_boot=100)}, pred)
        t0 = time.perf_counter()
        risk_coverage({"run": pred}, run / "risk_coverage.png")
        reliability(pred, run / "reliability.png")
        confidence_hist(pred, run / "confidence_id_vs_ood.png")
        plots_s = time.perf_counter() - t0
        page_s = median_time(lambda: run_page(run), args.repeats)
        size = (run / "report.html").stat().st_size
    print(f"run plots (3 PNGs) {plots_s:.2f} s   run page {page_s:.3f} s ({size / 1e3:.0f} kB, self-contained)")


if __name__ == "__main__":
    main()
