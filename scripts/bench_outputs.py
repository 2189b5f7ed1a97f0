"""How long the full report of 10,000 questions of stored outputs takes: outputs=lm_eval and outputs=arrays.

Writes synthetic lm-eval sample logs (4 tasks x 2,500 questions, 2-5 options, in lm-eval 0.4.13's layout: two runs)
and two ``.npz`` files (10,000 x 4 logits), then times each stage of what ``python -m uqcompress outputs=...`` does:
read + join, score/select/measure (the pipeline), results.json + predictions.csv, the table, the plots; and the
whole command line in a fresh process (interpreter, torch and Hydra start-up included).

    PYTHONPATH=. .venv/bin/python scripts/bench_outputs.py            # --questions 10000 --repeats 3
"""
from __future__ import annotations

import argparse
import io
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests" / "outputs"))  # the synthetic lm-eval writer shared with the tests


class Clock:
    """Wall and CPU seconds of named stages (CPU time shows the work when the machine is shared)."""

    def __init__(self) -> None:
        self.times: dict[str, tuple[float, float]] = {}

    def __call__(self, name: str, fn, *args, **kw):
        w, c = time.perf_counter(), time.process_time()
        out = fn(*args, **kw)
        self.times[name] = (time.perf_counter() - w, time.process_time() - c)
        return out


def stages(cfg: dict, out_dir: Path, plots: bool) -> dict[str, tuple[float, float]]:
    """(wall, CPU) seconds per stage of one run, as uqcompress.app runs them."""
    from rich.console import Console

    from uqcompress.outputs import load_outputs
    from uqcompress.pipeline import evaluate_stored
    from uqcompress.report.results import write_results
    from uqcompress.report.table import render

    clock = Clock()
    stored = clock("read + join", load_outputs, dict(cfg["outputs"]), seed=0)
    result = clock("score, select, measure", evaluate_stored, stored, cfg)
    clock("results.json + predictions.csv", write_results, out_dir, result.metrics, result.predictions)
    clock("table", render, result.metrics, title="bench", console=Console(file=io.StringIO(), width=100))
    if plots:
        from uqcompress.report.plots import plot_run

        clock("plots", plot_run, result, out_dir)
    t = clock.times
    t["total"] = (sum(v[0] for v in t.values()), sum(v[1] for v in t.values()))
    return t


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--questions", type=int, default=10_000)
    ap.add_argument("--repeats", type=int, default=3, help="in-process runs per setting; the median is printed")
    args = ap.parse_args()
    import numpy as np
    from lm_eval_synth import make_pair

    import uqcompress.pipeline  # noqa: F401  (imports are start-up, not report time: the CLI line below counts them)

    tmp = Path(tempfile.mkdtemp(prefix="bench_outputs_"))
    n_task = args.questions // 4
    t0 = time.perf_counter()
    base, comp, *_ = make_pair(tmp / "lm_eval", {f"task_{i}": n_task for i in range(4)}, options=(2, 3, 4, 5))
    rng = np.random.default_rng(0)
    z = rng.normal(size=(args.questions, 4)) * 2
    y = rng.integers(0, 4, args.questions)
    np.savez(tmp / "base.npz", logits=z, labels=y)
    np.savez(tmp / "comp.npz", logits=z + rng.normal(size=z.shape) * 0.3, labels=y)
    size = sum(f.stat().st_size for f in base.glob("*.jsonl")) / 2**20
    print(f"wrote {args.questions:,} questions per run ({size:.1f} MiB of samples_*.jsonl per run) and two .npz in "
          f"{time.perf_counter() - t0:.1f} s: {tmp}")
    print(f"machine: {os.cpu_count()} cores, load average {os.getloadavg()[0]:.1f}")

    common = {"uncertainty": {"name": "msp"}, "selector": {"name": "coverage", "target": 0.9}, "progress": False}
    sources = {
        "lm_eval": {"name": "lm_eval", "baseline": str(base.parent), "compressed": str(comp.parent)},
        "arrays": {"name": "arrays", "baseline": str(tmp / "base.npz"), "compressed": str(tmp / "comp.npz")},
    }
    for name, ocfg in sources.items():
        for plots in (False, True):
            runs = []
            for r in range(args.repeats):
                out = tmp / f"run_{name}_{plots}_{r}"
                out.mkdir()
                runs.append(stages({**common, "outputs": ocfg}, out, plots))
            print(f"\noutputs={name}, plots={'on' if plots else 'off'} (median of {args.repeats} in-process runs; "
                  "wall / CPU seconds):")
            for k in runs[0]:
                w, c = (float(np.median([t[k][j] for t in runs])) for j in (0, 1))
                print(f"  {k:32s} {w:7.3f} s  {c:7.3f} s")
        overrides = [f"outputs={name}", f"outputs.baseline={ocfg['baseline']}",
                     f"outputs.compressed={ocfg['compressed']}", "progress=false",
                     f"hydra.run.dir={tmp / ('cli_' + name)}"]
        env = {**os.environ, "PYTHONPATH": str(ROOT)}
        for plots in ("false", "true"):
            t0 = time.perf_counter()
            before = os.times()
            subprocess.run([sys.executable, "-m", "uqcompress", *overrides, f"plots={plots}", "resume=false"],
                           env=env, check=True, capture_output=True)
            after = os.times()
            cpu = (after.children_user + after.children_system) - (before.children_user + before.children_system)
            print(f"  python -m uqcompress outputs={name} plots={plots}: {time.perf_counter() - t0:.2f} s wall, "
                  f"{cpu:.2f} s CPU (a fresh process: interpreter, torch and Hydra start-up included)")


if __name__ == "__main__":
    main()
