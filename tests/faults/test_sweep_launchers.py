"""Issue 19: the same 6-job sweep through Ray (a local cluster started for the test, loopback only) and submitit's
local executor (the code path of SLURM without a scheduler), on a cold shared cache.

Each launcher must: write every result, record the failing jobs (failed.json, exit status 1, one line listing
them), compute every cache entry once although jobs run concurrently (``events.jsonl``), and resume on a rerun
(no job recomputed, no entry computed, results untouched). joblib with ``n_jobs=2``: test_sweep_parallel.py.
"""
from __future__ import annotations

import importlib.util
import json
import shutil
import tempfile
from collections import Counter
from pathlib import Path

import pytest

from fault_helpers import cli, events

# the embedded default shrunk (issue 19's sizes); 2 schemes x 3 selector targets, the target 1.5 is refused
SMALL = ["limit=300", "fit_limit=300", "ood.limit=200", "model.epochs=1", "threads=1", "plots=false", "progress=false",
         "latency.repeats=2"]
SWEEP = ["quant=none,int8", "selector.target=0.8,0.9,1.5"]


def _ray_args(tmp: Path) -> tuple[list[str], dict[str, str]]:
    """A local Ray cluster of 2 CPUs that ray.init starts in the sweep's process and stops with it: bound to
    127.0.0.1, no dashboard, its files (sessions, the auth token Ray writes into $HOME/.ray) under ``tmp``."""
    args = ["hydra/launcher=ray", "+hydra.launcher.ray.init.num_cpus=2",
            "+hydra.launcher.ray.init.include_dashboard=false",
            "+hydra.launcher.ray.init._node_ip_address=127.0.0.1", f"+hydra.launcher.ray.init._temp_dir={tmp}"]
    env = {"HOME": str(tmp), "RAY_USAGE_STATS_ENABLED": "0"}
    return args, env


def _launcher(name: str, tmp: Path) -> tuple[list[str], dict[str, str]]:
    if name == "ray":
        return _ray_args(tmp)
    return ["hydra/launcher=submitit_local", "hydra.launcher.timeout_min=20"], {}


def _has(module: str) -> bool:
    return importlib.util.find_spec(module) is not None


def _computed(cache: Path) -> Counter:
    return Counter((e["kind"], e["key"]) for e in events(cache))


@pytest.mark.slow
@pytest.mark.parametrize("name", [
    pytest.param("ray", marks=pytest.mark.skipif(not _has("hydra_plugins.hydra_ray_launcher"),
                                                 reason="hydra-ray-launcher not installed (the sweep extra)")),
    pytest.param("submitit_local", marks=pytest.mark.skipif(not _has("hydra_plugins.hydra_submitit_launcher"),
                                                            reason="hydra-submitit-launcher not installed")),
])
def test_six_job_sweep_on_a_launcher(name, tmp_path, monkeypatch):
    monkeypatch.delenv("RAY_ADDRESS", raising=False)  # never a cluster of the machine: the test starts its own
    short = Path(tempfile.mkdtemp(prefix="uqr", dir="/tmp"))  # Ray's socket paths must stay under 108 bytes
    try:
        launcher, extra_env = _launcher(name, short)
        cache, sweep = tmp_path / "cache", tmp_path / "sweep"
        args = ["--multirun", *SWEEP, *SMALL, *launcher, f"hydra.sweep.dir={sweep}"]
        r = cli(*args, cache=cache, extra_env=extra_env)
        out = r.stdout + r.stderr
        assert r.returncode == 1, out[-4000:]  # the two refused jobs fail the sweep
        if name == "ray":
            assert "Ray Launcher is launching 6 jobs" in out
        else:
            assert "Submitit 'local' sweep output dir" in out

        done = sorted(p.parent for p in sweep.rglob("results.json"))
        failed = sorted(p.parent for p in sweep.rglob("failed.json"))
        assert len(done) == 4 and len(failed) == 2, (done, failed)
        for d in failed:
            assert "selector.target=1.5" in d.name
            assert "target" in json.loads((d / "failed.json").read_text())["error"]
        for d in done:
            res = json.loads((d / "results.json").read_text())
            assert f"quant={res['config.quant']}," in d.name and 0 <= res["compressed.accuracy"] <= 1
        assert r.stderr.strip().splitlines()[-1].startswith(f"uqcompress: 2 of 6 sweep jobs failed in {sweep}")

        # concurrent jobs shared the cold cache and computed each entry exactly once
        work = _computed(cache)
        assert set(work.values()) == {1}, [k for k, n in work.items() if n > 1]
        kinds = Counter(kind for kind, _ in work)
        assert kinds["models/small_cnn"] == 1 and kinds["compressed/int8"] == 1 and kinds["datasets/mnist"] == 1
        assert kinds["logits"] == 6  # the baseline (= quant=none) and int8, once over calibration, test, ood
        assert len({e["pid"] for e in events(cache, event="startup")}) >= 2  # the jobs ran in several processes

        # a rerun resumes: no job recomputed, nothing computed, results untouched (the refused jobs fail again)
        before = {d: ((d / "results.json").read_bytes(), (d / "results.json").stat().st_mtime_ns) for d in done}
        n_events = len(events(cache))
        again = cli(*args, cache=cache, extra_env=extra_env)
        out = again.stdout + again.stderr
        assert again.returncode == 1, out[-4000:]
        for d in done:  # each job's own log (Ray and submitit jobs log in their processes, not the sweep's)
            assert "already has results; skipping" in "".join(p.read_text() for p in d.glob("*.log")), d
        assert len(events(cache)) == n_events
        assert {d: ((d / "results.json").read_bytes(), (d / "results.json").stat().st_mtime_ns) for d in done} \
            == before
    finally:
        shutil.rmtree(short, ignore_errors=True)
