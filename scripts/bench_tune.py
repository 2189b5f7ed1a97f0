"""Benchmark ``python -m uqcompress.tune``: model evaluations and wall time of each run of a budget sequence.

Each budget runs as its own ``python -m uqcompress.tune`` process in one cache, in order, so the later runs show
what the cache saves: a run with a tighter budget should evaluate only the models the earlier runs did not. The
evaluations of a run are the passes it appended to ``<cache>/events.jsonl`` (kinds ``logits``: a model over one split;
``calibration``: an observer pass over the calibration split); ``repeated`` counts passes an earlier run of the
sequence had already logged (it should be 0).

``--swaps RUN_DIR`` measures instead what the ranking's swaps stand in for, on a finished tune run: for the first
``--layers`` layers of its ranking, the swapped model (int8 model with that layer float) vs the real ``quant.skip``
model, KL to the baseline on the ranking subset, and the time to get each (a swap; a build from the shared observer
statistics; a calibration pass, which each variant would cost without them).

Usage:
    PYTHONPATH=. python scripts/bench_tune.py   # embedded default shrunk (limit=300); budgets kl 2e-4, 1e-4, 2e-4
    PYTHONPATH=. python scripts/bench_tune.py --cache ~/.cache/uqcompress \\
        --overrides model=efficientnet_lite0 data=cifar10 ood=none 'tune.schemes=[int8]' \\
        --budgets budget.flips=0.05 budget.flips=0.03
    PYTHONPATH=. python scripts/bench_tune.py --swaps outputs/tune/DATE/TIME --layers 8
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


def swap_fidelity(run_dir: Path, n_layers: int) -> None:
    """Swapped vs real quant.skip single-layer models of a finished tune run (see the module docstring)."""
    import warnings

    import torch
    from omegaconf import OmegaConf

    from uqcompress import metrics as M
    from uqcompress.compress import CompressContext, compress
    from uqcompress.compress.int8_static import prepared_int8
    from uqcompress.models import BuildContext, build_model
    from uqcompress.pipeline import DEFAULTS, _merge, load_data
    from uqcompress.runner import Runner
    from uqcompress.tune.swap import LayerSwap

    warnings.simplefilter("ignore")
    cfg = _merge(DEFAULTS, OmegaConf.to_container(OmegaConf.load(run_dir / ".hydra" / "config.yaml"), resolve=True))
    t = json.loads((run_dir / "tune.json").read_text())
    search = t["searches"][0]
    quant = next(c["quant"] for c in t["candidates"] if c["role"].startswith("scheme")
                 and c["scheme"] == search["scheme"])
    data, _ = load_data(cfg)
    runner = Runner("cpu", int(cfg.get("batch_size") or cfg["model"].get("inference_batch_size") or 256), False)
    base = build_model(dict(cfg["model"]), data, BuildContext(cfg["seed"], "cpu", False, runner))
    ctx = CompressContext(cfg["seed"], "cpu", False, runner=runner)
    cal = data["calibration"]
    q = compress(base, dict(quant), cal.x, ctx)
    sub = cal.head(t["tune"]["ranking_samples"])
    zb = runner.logits(base, sub.x)
    swap = LayerSwap.build(base, q, search["ranking"]["layers"], base.prepare(cal.x[:2]))
    print(f"{'layer':<44} {'swap KL':>9} {'real KL':>9} {'swap s':>7} {'build s':>8}")
    rows = []
    for name in search["ranking"]["orders"][search["better_ranking"]][:n_layers]:
        t0 = time.perf_counter()
        with swap.float_layers([name]) as m:
            t_swap = time.perf_counter() - t0
            kl_swap = M.kl_from_logits(zb, runner.logits(q.with_module(m, "swap"), sub.x))
        t0 = time.perf_counter()
        real = compress(base, {**quant, "skip": list(quant.get("skip") or []) + [name]}, cal.x, ctx)
        t_build = time.perf_counter() - t0
        kl_real = M.kl_from_logits(zb, runner.logits(real, sub.x))
        rows.append((kl_swap, kl_real))
        print(f"{name:<44} {kl_swap:>9.5f} {kl_real:>9.5f} {t_swap:>7.3f} {t_build:>8.1f}", flush=True)
    calib = cal.x[: int(quant.get("calibration_samples", 512))]
    mode = q.quant.get("mode", "fx")
    prepared, _ = prepared_int8(base.module, quant.get("backend", "x86"), (base.prepare(cal.x[:2]),), mode, [])
    t0 = time.perf_counter()
    runner.calibrate(base, prepared, calib, batch_size=ctx.batch_size)
    t_cal = time.perf_counter() - t0
    sw, re = zip(*rows)
    print(f"\nSpearman(swap KL, real KL) over {len(rows)} layers: {M.spearman(list(sw), list(re)):.3f}; "
          f"one calibration pass ({len(calib)} samples, {mode}): {t_cal:.0f} s, which each variant would cost "
          "without the shared observer statistics")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--cache", type=Path, default=None, help="cache folder (default: a fresh temporary one)")
    ap.add_argument("--overrides", nargs="*", default=TINY, help="overrides every run shares")
    ap.add_argument("--budgets", nargs="+", default=["budget.kl=0.0002", "budget.kl=0.0001", "budget.kl=0.0002"],
                    help="one run per item (several overrides in one item: separate them with spaces)")
    ap.add_argument("--out", type=Path, default=None, help="run folders go here (default: a temporary folder)")
    ap.add_argument("--swaps", type=Path, default=None, help="a finished tune run folder: measure its swaps instead")
    ap.add_argument("--layers", type=int, default=8, help="with --swaps: how many layers of its ranking")
    args = ap.parse_args()
    if args.swaps is not None:
        swap_fidelity(args.swaps, args.layers)
        return
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
        later = rows[1:]
        wall = sum(r["wall_s"] for r in later) / len(later) / rows[0]["wall_s"]
        evals = sum(r["logits"] + r["calibration"] for r in later) / len(later)
        print(f"\nlater runs vs the first: wall time x{wall:.2f}, "
              f"evaluations x{evals / max(1, rows[0]['logits'] + rows[0]['calibration']):.2f}")


if __name__ == "__main__":
    main()
