"""Sweep scale-out: per-job start-up, one 12-job sweep on three launchers, the report on thousands of run folders.

    PYTHONPATH=. python scripts/bench_sweep.py [--workers 2] [--cold] [--skip-ray] [--runs 2000] [--keep DIR]

1. Start-up (the embedded default shrunk: ``limit=300 ood.limit=200 model.epochs=1 threads=1 plots=false``, warm
   cache): three single runs, each a fresh ``python -m uqcompress`` process; from each job's ``startup`` event in
   ``events.jsonl`` (see :mod:`uqcompress.startup`): seconds from the job's start to its first inference (target:
   < 2 s on an idle machine), seconds since its process started, and the command's wall time.
2. The same 12-job sweep (``quant=none,int8,int8_dynamic,prune_global_l1 x uncertainty=msp,entropy,margin``) with the
   basic launcher (one process, jobs in turn), joblib (``n_jobs=WORKERS``) and Ray (a local cluster of WORKERS CPUs
   started by the sweep, its start-up included): wall time, per job, and the speedup of each over basic. Warm by
   default (the cache holds the models and logits; ``resume=false`` so every job runs); ``--cold`` gives each
   launcher an empty cache (training, calibration and inference race for the per-entry locks).
3. ``python -m uqcompress.report`` on RUNS synthetic run folders (results.json, .hydra/overrides.yaml and
   predictions.csv of a real run, numbers and swept overrides varied): wall time (target: < 10 s).

Every timing is printed with the 1-minute load average next to it and the number of cores: on a loaded machine the
parallel launchers cannot show their speedup, and start-up targets are for an idle machine.
"""
from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SMALL = ["limit=300", "ood.limit=200", "model.epochs=1", "threads=1", "plots=false", "progress=false",
         "latency.repeats=2"]
SWEEP = ["quant=none,int8,int8_dynamic,prune_global_l1", "uncertainty=msp,entropy,margin"]


def load() -> str:
    return f"load {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores"


def run(args: list[str], cache: Path, env: dict[str, str] | None = None, module: str = "uqcompress"
        ) -> tuple[float, subprocess.CompletedProcess]:
    e = {**os.environ, "PYTHONPATH": str(ROOT), "UQCOMPRESS_CACHE": str(cache), "RAY_USAGE_STATS_ENABLED": "0",
         **(env or {})}
    e.pop("RAY_ADDRESS", None)
    t0 = time.perf_counter()
    r = subprocess.run([sys.executable, "-m", module, *args], cwd=ROOT, env=e, capture_output=True, text=True)
    wall = time.perf_counter() - t0
    if r.returncode != 0:
        sys.exit(f"bench_sweep: {' '.join(args[:6])} ... failed (exit {r.returncode}):\n{r.stderr[-3000:]}")
    return wall, r


def startup_events(cache: Path, since: int = 0) -> list[dict]:
    path = cache / "events.jsonl"
    rows = [json.loads(line) for line in path.read_text().splitlines()[since:]] if path.is_file() else []
    return [r for r in rows if r.get("event") == "startup"]


def n_events(cache: Path) -> int:
    path = cache / "events.jsonl"
    return len(path.read_text().splitlines()) if path.is_file() else 0


def bench_startup(cache: Path, work: Path, repeats: int = 3) -> None:
    print(f"== start-up: one job of the embedded default shrunk, a fresh process each, warm cache")
    run([*SMALL, f"hydra.run.dir={work / 'warmup'}"], cache)  # trains, calibrates, infers once
    rows = []
    for i in range(repeats):
        before = n_events(cache)
        wall, _ = run([*SMALL, f"hydra.run.dir={work / f'single{i}'}"], cache)
        (ev,) = startup_events(cache, before)
        rows.append((ev["job_s"], ev["process_s"], ev["cpu_s"], wall))
        print(f"  run {i + 1}: job start -> first inference {ev['job_s']:.2f} s; process start -> first inference "
              f"{ev['process_s']:.2f} s ({ev['cpu_s']:.2f} CPU s); whole command {wall:.2f} s   ({load()})")
    med = [statistics.median(c) for c in zip(*rows)]
    print(f"  median: {med[0]:.2f} s from job start (target < 2 s idle), {med[1]:.2f} s from process start "
          f"(the process had used {med[2]:.2f} CPU s by then: about its idle wall time), {med[3]:.2f} s per command")


def bench_sweeps(cache: Path, work: Path, workers: int, cold: bool, skip_ray: bool) -> None:
    launchers = {
        "basic": [],
        f"joblib n_jobs={workers}": ["hydra/launcher=joblib", f"hydra.launcher.n_jobs={workers}"],
    }
    if not skip_ray:
        ray_tmp = Path(tempfile.mkdtemp(prefix="uqbr", dir="/tmp"))  # Ray's socket paths must stay short
        launchers[f"ray {workers} CPUs"] = [
            "hydra/launcher=ray", f"+hydra.launcher.ray.init.num_cpus={workers}",
            "+hydra.launcher.ray.init.include_dashboard=false", "+hydra.launcher.ray.init._node_ip_address=127.0.0.1",
            f"+hydra.launcher.ray.init._temp_dir={ray_tmp}"]
    print(f"== the same 12-job sweep ({' x '.join(SWEEP)}), {'cold cache each' if cold else 'warm cache'}")
    if not cold:
        run(["--multirun", *SWEEP, *SMALL, f"hydra.sweep.dir={work / 'sweep_warmup'}"], cache)
    times = {}
    for name, extra in launchers.items():
        c = work / f"cache_{len(times)}" if cold else cache
        env = {"HOME": str(ray_tmp)} if name.startswith("ray") else None  # Ray writes its auth token in $HOME/.ray
        before = n_events(c)
        wall, r = run(["--multirun", *SWEEP, *SMALL, "resume=false", *extra,
                       f"hydra.sweep.dir={work / f'sweep_{len(times)}'}"], c, env)
        jobs = len(list((work / f"sweep_{len(times)}").rglob("results.json")))
        starts = startup_events(c, before)
        job_s = statistics.median(e["job_s"] for e in starts) if starts else float("nan")
        times[name] = wall
        print(f"  {name:<16} {wall:6.1f} s for {jobs} jobs ({wall / max(jobs, 1):.2f} s per job; median job start -> "
              f"first inference {job_s:.2f} s in {len({e['pid'] for e in starts})} processes)   ({load()})")
    if not skip_ray:
        shutil.rmtree(ray_tmp, ignore_errors=True)
    base = times["basic"]
    print("  speedup over basic: " + ", ".join(f"{n} x{base / t:.2f}" for n, t in times.items() if n != "basic")
          + f"  (ideal x{workers} on an idle machine with >= {workers} free cores)")


def synthetic_runs(sweep: Path, n: int, seed: int = 0) -> None:
    """``n`` run folders of a fake sweep, made from one real run: results.json (config and metrics varied, the
    predictions' sha256 kept valid), the predictions.csv it points to and .hydra/overrides.yaml (the swept values)."""
    template = next(sweep.parent.rglob("single0/results.json"))
    res = json.loads(template.read_text())
    preds = (template.parent / "predictions.csv").read_bytes()
    rng = random.Random(seed)
    quants = ["none", "int8", "int8_dynamic", "prune_global_l1", "fp16", "bf16", "int4_weight_only", "prune_2of4"]
    scorers = ["msp", "entropy", "margin", "energy", "temperature"]
    for i in range(n):
        q, u, t = quants[i % len(quants)], scorers[(i // len(quants)) % len(scorers)], round(0.5 + (i % 50) / 100, 2)
        d = sweep / f"quant={q},selector.target={t},seed={i},uncertainty={u}"
        (d / ".hydra").mkdir(parents=True)
        r = {**res, "config.quant": q, "config.uncertainty": u, "config.seed": i}
        for k, v in r.items():
            if isinstance(v, float) and not k.startswith(("run.", "config.")):
                r[k] = v * (0.9 + 0.2 * rng.random())
        (d / "results.json").write_text(json.dumps(r))
        (d / "predictions.csv").write_bytes(preds)
        (d / ".hydra" / "overrides.yaml").write_text(
            f"- quant={q}\n- selector.target={t}\n- seed={i}\n- uncertainty={u}\n")


def bench_report(work: Path, runs: int) -> None:
    sweep = work / "synthetic"
    synthetic_runs(sweep, runs)
    print(f"== python -m uqcompress.report on {runs} synthetic run folders")
    wall, r = run([str(sweep)], work / "unused-cache", module="uqcompress.report")
    print(f"  {wall:.1f} s (target < 10 s)   ({load()}); wrote: "
          + ", ".join(Path(p).name for p in r.stdout.split()[:4]) + ("..." if len(r.stdout.split()) > 4 else ""))


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--cold", action="store_true", help="each launcher starts from an empty cache")
    ap.add_argument("--skip-ray", action="store_true")
    ap.add_argument("--runs", type=int, default=2000, help="synthetic run folders for the report (0 = skip)")
    ap.add_argument("--only", choices=["startup", "sweeps", "report"], action="append",
                    help="run only these parts (repeatable); the report needs a finished start-up part")
    ap.add_argument("--keep", type=Path, default=None, help="work in this folder and keep it (default: a temp dir)")
    args = ap.parse_args(argv)
    work = args.keep or Path(tempfile.mkdtemp(prefix="uqbench-"))
    work.mkdir(parents=True, exist_ok=True)
    cache = work / "cache"
    parts = args.only or ["startup", "sweeps", "report"]
    try:
        if "startup" in parts or "report" in parts:
            bench_startup(cache, work)
        if "sweeps" in parts:
            bench_sweeps(cache, work, args.workers, args.cold, args.skip_ray)
        if "report" in parts and args.runs:
            bench_report(work, args.runs)
    finally:
        if args.keep is None:
            shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
