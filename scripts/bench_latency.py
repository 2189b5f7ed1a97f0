"""``compressed.speedup`` of the embedded default (small CNN, static int8, MNIST) with one core kept busy and idle.

    PYTHONPATH=. python scripts/bench_latency.py [--runs 3] [--threads 1,0] [--pin] [overrides ...]

Builds (or loads from the cache) the embedded default's baseline and int8 copy as ``python -m uqcompress`` does, then
times both with :meth:`uqcompress.runner.Runner.latency` (the run's ``latency.*`` settings) ``--runs`` times while a
busy-loop process keeps one core busy (started and stopped by this script; ``--pin`` pins it to the last core) and
``--runs`` times without it, busy and idle runs alternating. Each run times every ``--threads`` setting (0 = every
core, what ``latency.threads=null`` did before) in turn, so the settings are compared under the same load. Prints
per run: the load average, each model's median ms/sample and quartiles, the speedup; then per setting the speedups
busy and idle and how far the busy median is from the idle one. Overrides are Hydra overrides of the default
(``model.epochs=1`` for a quick cold build).
"""
from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import time
import warnings
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def default_config(overrides: list[str]) -> dict:
    """The embedded default (conf/config.yaml) with Hydra ``overrides``, resolved as the CLI would."""
    from hydra import compose, initialize_config_dir
    from omegaconf import OmegaConf

    with initialize_config_dir(str(ROOT / "uqcompress" / "conf"), version_base=None):
        cfg = OmegaConf.to_container(compose("config", overrides=["progress=false", *overrides]), resolve=True)
    cfg.pop("hydra", None)
    return cfg


def busy_core(pin: bool) -> subprocess.Popen:
    """A process that spins on one core until killed (on the last core with ``pin``)."""
    code = "import os, sys\nif int(sys.argv[1]) >= 0: os.sched_setaffinity(0, {int(sys.argv[1])})\nwhile True: pass"
    core = (os.cpu_count() or 1) - 1 if pin else -1
    return subprocess.Popen([sys.executable, "-c", code, str(core)])


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", type=int, default=3, help="runs with a busy core and as many without")
    ap.add_argument("--threads", default="1,0", help="latency.threads settings to compare (0 = every core)")
    ap.add_argument("--pin", action="store_true", help="pin the busy loop to the last core")
    ap.add_argument("overrides", nargs="*", help="Hydra overrides of the embedded default")
    args = ap.parse_args(argv)
    warnings.simplefilter("ignore")
    import torch

    from uqcompress.compress import CompressContext, compress
    from uqcompress.models import BuildContext, build_model
    from uqcompress.pipeline import _merge, DEFAULTS, load_data, start_run

    cfg = _merge(DEFAULTS, default_config(args.overrides))
    runner = start_run(cfg)
    t0 = time.perf_counter()
    data, _ = load_data(cfg)
    base = build_model(dict(cfg["model"]), data, BuildContext(cfg["seed"], str(runner.device), False, runner))
    runner.place(base)
    comp = compress(base, dict(cfg["quant"]), data["calibration"].x,
                    CompressContext(cfg["seed"], str(runner.device), False, runner=runner))
    print(f"{cfg['model']['name']} x {cfg['quant']['name']} on {cfg['data']['name']}: built or loaded in "
          f"{time.perf_counter() - t0:.1f} s; {os.cpu_count()} cores, torch default threads {torch.get_num_threads()}; "
          f"latency {cfg['latency']}")
    settings = [int(t) for t in args.threads.split(",")]
    speedups: dict[tuple[int, str], list[float]] = {}
    print(f"{'run':4s} {'load':>5s} {'core':5s} {'thr':>3s} {'clock':10s} {'base ms':>8s} {'(q1-q3)':>15s} "
          f"{'int8 ms':>8s} {'(q1-q3)':>15s} {'speedup':>7s}")
    for i in range(2 * args.runs):
        state = "busy" if i % 2 == 0 else "idle"
        proc = busy_core(args.pin) if state == "busy" else None
        try:
            if proc is not None:
                time.sleep(0.5)  # let the loop start
            for t in settings:
                opts = {**cfg["latency"], "threads": t or None}
                timing = runner.latency({"baseline": base, "compressed": comp}, data["test"].x, **opts)
                b, c = timing["baseline"], timing["compressed"]
                s = b["latency_ms_per_sample"] / c["latency_ms_per_sample"]
                speedups.setdefault((t, state), []).append(s)
                print(f"{i // 2 + 1:<4d} {os.getloadavg()[0]:5.1f} {state:5s} {b['latency_threads']:3d} "
                      f"{b['latency_clock']:10s} "
                      f"{b['latency_ms_per_sample']:8.4f} ({b['latency_q1_ms']:6.4f}-{b['latency_q3_ms']:6.4f}) "
                      f"{c['latency_ms_per_sample']:8.4f} ({c['latency_q1_ms']:6.4f}-{c['latency_q3_ms']:6.4f}) "
                      f"{s:7.2f}", flush=True)
        finally:
            if proc is not None:
                proc.kill()
                proc.wait()
    print("\nspeedup per setting (threads: busy runs | idle runs | busy median / idle median):")
    for t in settings:
        busy, idle = speedups[(t, "busy")], speedups[(t, "idle")]
        print(f"  threads={t or 'all'}: busy {', '.join(f'{v:.2f}' for v in busy)} | idle "
              f"{', '.join(f'{v:.2f}' for v in idle)} | {statistics.median(busy) / statistics.median(idle):.2f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
