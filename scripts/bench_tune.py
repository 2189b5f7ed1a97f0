"""Benchmark ``python -m uqcompress.tune``: model evaluations and wall time of each run of a budget sequence.

Each budget runs as its own ``python -m uqcompress.tune`` process in one cache, in order, so the later runs show
what the cache saves: a run with a tighter budget should evaluate only the models the earlier runs did not. The
evaluations of a run are the passes it appended to ``<cache>/events.jsonl`` (kinds ``logits``: a model over one split;
``calibration``: an observer pass over the calibration split); ``repeated`` counts passes an earlier run of the
sequence had already logged (it should be 0).

Usage:
    PYTHONPATH=. python scripts/bench_tune.py      # the embedded default shrunk (limit=300), budgets kl 2e-4, 1e-4, 2e-4
    PYTHONPATH=. python scripts/bench_tune.py --cache ~/.cache/uqcompress \\
        --overrides model=efficientnet_lite0 data=cifar10 ood=none 'tune.schemes=[int8]' \\
        --budgets budget.flips=0.05 budget.flips=0.03
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
TINY = ["limit=300", "ood.limit=100", "model.epochs=6", "model.batch_size=32", "latency.repeats=2",
        "tune.bootstrap=200"]


def events(cache: Path) -> list[dict]:
    path = cache / "events.jsonl"
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()] if path.is_file() else []


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--cache", type=Path, default=None, help="cache folder (default: a fresh temporary one)")
    ap.add_argument("--overrides", nargs="*", default=TINY, help="overrides every run shares")
    ap.add_argument("--budgets", nargs="+", default=["budget.kl=0.0002", "budget.kl=0.0001", "budget.kl=0.0002"],
                    help="one run per item (several overrides in one item: separate them with spaces)")
    ap.add_argument("--out", type=Path, default=None, help="run folders go here (default: a temporary folder)")
    args = ap.parse_args()
    cache = (args.cache or Path(tempfile.mkdtemp(prefix="bench_tune_cache_"))).expanduser()
    out = args.out or Path(tempfile.mkdtemp(prefix="bench_tune_runs_"))
    env = {**os.environ, "PYTHONPATH": str(ROOT), "CI": "true"}
    seen: set[tuple[str, str]] = set()
    rows = []
    for i, budget in enumerate(args.budgets):
        run_dir = out / f"run{i}"
        cmd = [sys.executable, "-m", "uqcompress.tune", *args.overrides, *budget.split(), "progress=false",
               f"cache_dir={cache}", f"hydra.run.dir={run_dir}"]
        start = len(events(cache))
        t0 = time.perf_counter()
        r = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True)
        wall = time.perf_counter() - t0
        if r.returncode not in (0, 3):
            sys.exit(f"run {i} failed ({r.returncode}):\n{r.stderr[-3000:]}")
        new = [e for e in events(cache)[start:] if e["kind"] in ("logits", "calibration")]
        keys = {(e["kind"], e["key"]) for e in new}
        t = json.loads((run_dir / "tune.json").read_text())
        chosen = t.get("chosen") or {}
        rows.append({
            "run": i, "budget": budget, "wall_s": wall,
            "logits": sum(e["kind"] == "logits" for e in new),
            "calibration": sum(e["kind"] == "calibration" for e in new),
            "repeated": len(keys & seen),
            "chosen": t.get("chosen_name") or "none",
            "fp32_layers": len(chosen.get("compressed.fp32_layers") or []),
            "size_x": (chosen["compressed.model_size_bytes"] / chosen["baseline.model_size_bytes"]) if chosen else None,
            "test_flips": chosen.get("compressed.flips"),
        })
        seen |= keys
        print(f"run {i} ({budget}): {wall:.0f} s, {rows[-1]['logits']} logits passes, {rows[-1]['calibration']} "
              f"calibration passes, {rows[-1]['repeated']} repeated; chosen {rows[-1]['chosen']}", flush=True)
    print(f"\ncache: {cache}\nruns:  {out}\n")
    head = f"{'run':>3}  {'budget':<28} {'wall s':>7} {'logits':>6} {'calib':>5} {'repeat':>6}  {'float':>5} " \
           f"{'size':>6} {'flips':>7}  chosen"
    print(head)
    for row in rows:
        size = f"{row['size_x']:.3f}" if row["size_x"] is not None else "—"
        flips = f"{row['test_flips']:.4f}" if row["test_flips"] is not None else "—"
        print(f"{row['run']:>3}  {row['budget']:<28} {row['wall_s']:>7.0f} {row['logits']:>6} {row['calibration']:>5} "
              f"{row['repeated']:>6}  {row['fp32_layers']:>5} {size:>6} {flips:>7}  {row['chosen']}")
    if len(rows) > 1:
        print(f"\nlater runs vs the first: wall time x{sum(r['wall_s'] for r in rows[1:]) / (len(rows) - 1) / rows[0]['wall_s']:.2f}, "
              f"evaluations x{sum(r['logits'] + r['calibration'] for r in rows[1:]) / (len(rows) - 1) / max(1, rows[0]['logits'] + rows[0]['calibration']):.2f}")


if __name__ == "__main__":
    main()
