"""Where a command's time goes before it does any work: a stored-outputs report and the warm default run.

    PYTHONPATH=. python scripts/bench_startup.py [--rows 10000] [--repeats 3] [--skip-default] [--cache DIR] \
        [overrides of the default run ...]

Runs, each as a fresh ``python -X importtime -m uqcompress ...`` process:

* ``outputs=arrays`` over two ``.npz`` files of ``--rows`` questions x 4 options (written here), ``plots=false``;
* the warm default (``python -m uqcompress``: small CNN, int8, MNIST; plots on), after one untimed run that fills
  the cache (``--cache``, default a fresh folder under the temp dir). That first run trains; without overrides the
  script passes ``model.epochs=1`` to it and to the warm runs (about a minute to fill instead of ten; the weights
  differ, the cost of a warm run, which loads them, does not). Give overrides (e.g. ``model.epochs=16``) to time
  another configuration;
* the import floor: one fresh ``python -X importtime -c "import torch, matplotlib.pyplot, hydra, omegaconf"``, the
  libraries the warm default cannot run without (its models, its plots, its command line).

Prints per run: wall seconds, CPU seconds (user + system of the child), the seconds spent importing (the sum of the
top-level cumulative times of ``-X importtime``) and their share of the wall time, the load average, and the largest
top-level imports. ``-X importtime`` itself adds a little to every import. The medians over ``--repeats`` runs and
the two Done-when figures of issue 29 are printed last: stored outputs <= 3 s as a command, import share of the warm
default <= 25% (with the floor's share of the same wall time next to it). Wall times depend on the machine's load
(printed); CPU seconds much less.
"""
from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def import_times(stderr: str) -> dict[str, float]:
    """Top-level modules -> cumulative import seconds, from ``python -X importtime``'s stderr."""
    out: dict[str, float] = {}
    for line in stderr.splitlines():
        if not line.startswith("import time:") or "cumulative" in line:
            continue
        _, cum, name = line[len("import time:"):].split("|", 2)
        if not name.startswith("  "):  # depth 0: one space after the bar; nested imports are indented further
            out[name.strip()] = out.get(name.strip(), 0.0) + int(cum) / 1e6
    return out


def run(args: list[str], env: dict) -> dict:
    """Wall / CPU / import seconds of one ``python -X importtime -m uqcompress *args`` process."""
    before, t0, load = os.times(), time.perf_counter(), os.getloadavg()[0]
    r = subprocess.run([sys.executable, "-X", "importtime", "-m", "uqcompress", *args], cwd=ROOT, env=env,
                       capture_output=True, text=True, timeout=1800)
    wall, after = time.perf_counter() - t0, os.times()
    if r.returncode != 0:
        raise SystemExit(f"failed ({r.returncode}): {' '.join(args)}\n{r.stderr[-2000:]}")
    imports = import_times(r.stderr)
    cpu = (after.children_user + after.children_system) - (before.children_user + before.children_system)
    return {"wall": wall, "cpu": cpu, "imports": sum(imports.values()), "top": imports,
            "load": (load + os.getloadavg()[0]) / 2}


def floor(env: dict) -> float:
    """Import seconds of torch, matplotlib.pyplot, hydra and omegaconf in one fresh process (``-X importtime``)."""
    r = subprocess.run([sys.executable, "-X", "importtime", "-c", "import torch, matplotlib.pyplot, hydra, omegaconf"],
                       cwd=ROOT, env=env, capture_output=True, text=True, timeout=600, check=True)
    return sum(import_times(r.stderr).values())


def report(name: str, runs: list[dict]) -> dict[str, float]:
    for i, r in enumerate(runs):
        top = sorted(r["top"].items(), key=lambda kv: -kv[1])[:5]
        print(f"  {name} #{i + 1}: {r['wall']:6.2f} s wall, {r['cpu']:6.2f} s CPU, imports {r['imports']:5.2f} s "
              f"({100 * r['imports'] / r['wall']:4.1f}% of wall), load {r['load']:4.1f}; largest: "
              + ", ".join(f"{k} {v:.2f}" for k, v in top), flush=True)
    med = {k: statistics.median(r[k] for r in runs) for k in ("wall", "cpu", "imports")}
    share = statistics.median(r["imports"] / r["wall"] for r in runs)
    print(f"  {name}: median {med['wall']:.2f} s wall, {med['cpu']:.2f} s CPU, imports {med['imports']:.2f} s "
          f"({100 * share:.1f}% of wall)")
    return {**med, "share": share}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rows", type=int, default=10_000)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--skip-default", action="store_true", help="only the stored-outputs command")
    ap.add_argument("--cache", default=None, help="the warm default's cache (default: a fresh temp folder)")
    ap.add_argument("overrides", nargs="*", help="Hydra overrides of the default run (e.g. model.epochs=1)")
    args = ap.parse_args(argv)
    import numpy as np

    tmp = Path(tempfile.mkdtemp(prefix="bench_startup_"))
    rng = np.random.default_rng(0)
    z, y = rng.normal(size=(args.rows, 4)) * 2, rng.integers(0, 4, args.rows)
    np.savez(tmp / "base.npz", logits=z, labels=y)
    np.savez(tmp / "comp.npz", logits=z + rng.normal(size=z.shape) * 0.3, labels=y)
    cache = Path(args.cache) if args.cache else tmp / "cache"
    env = {**os.environ, "PYTHONPATH": str(ROOT), "UQCOMPRESS_CACHE": str(cache)}
    print(f"{os.cpu_count()} cores, load average {os.getloadavg()[0]:.1f}; {args.rows:,} rows; {tmp}")

    stored = ["outputs=arrays", f"outputs.baseline={tmp / 'base.npz'}", f"outputs.compressed={tmp / 'comp.npz'}",
              "progress=false", "plots=false", "resume=false"]
    runs = [run([*stored, f"hydra.run.dir={tmp / f'arrays{i}'}"], env) for i in range(args.repeats)]
    arrays = report("outputs=arrays", runs)
    warm = None
    if not args.skip_default:
        overrides = args.overrides or ["model.epochs=1"]
        t0 = time.perf_counter()
        subprocess.run([sys.executable, "-m", "uqcompress", *overrides, "progress=false",
                        f"hydra.run.dir={tmp / 'cold'}"],
                       cwd=ROOT, env=env, check=True, capture_output=True, timeout=3600)
        print(f"  (the default ({' '.join(overrides)}) once to fill the cache: {time.perf_counter() - t0:.1f} s)")
        runs = [run([*overrides, "progress=false", "resume=false", f"hydra.run.dir={tmp / f'warm{i}'}"], env)
                for i in range(args.repeats)]
        warm = report("warm default", runs)
        least = statistics.median(floor(env) for _ in range(args.repeats))
    print(f"Done when (issue 29), load average now {os.getloadavg()[0]:.1f}:")
    print(f"  outputs=arrays over {args.rows:,} rows as a command: median {arrays['wall']:.2f} s wall "
          f"({arrays['cpu']:.2f} s CPU) <= 3 s: {'yes' if arrays['wall'] <= 3 else 'no'}")
    if warm is not None:
        print(f"  import share of the warm default: median {100 * warm['share']:.1f}% of {warm['wall']:.2f} s wall "
              f"({warm['cpu']:.2f} s CPU) <= 25%: {'yes' if warm['share'] <= 0.25 else 'no'}; the floor (torch, "
              f"matplotlib.pyplot, hydra, omegaconf alone: {least:.2f} s) is {100 * least / warm['wall']:.1f}% of "
              f"that wall time")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
