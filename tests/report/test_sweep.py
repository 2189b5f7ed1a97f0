"""Sweeps: shared inference, resume after a kill, failures that do not stop the sweep, launchers, the report."""
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest

ROOT = Path(__file__).resolve().parents[2]

FAST = ["limit=300", "fit_limit=300", "ood.limit=200", "model.epochs=6", "model.batch_size=32", "progress=false",
        "latency.repeats=2", "plots=false"]


def _events(cache: Path, kind: str = "logits") -> list[dict]:
    path = cache / "events.jsonl"
    rows = [json.loads(l) for l in path.read_text().splitlines()] if path.is_file() else []
    return [r for r in rows if r["kind"] == kind and r["event"] == "compute"]


@pytest.mark.slow
def test_sweep_infers_baseline_once_and_each_scheme_once(cli, tmp_path):
    cache = tmp_path / "cache"
    r = cli("--multirun", "quant=none,int8", "uncertainty=msp,entropy", *FAST, f"cache_dir={cache}",
                f"hydra.sweep.dir={tmp_path / 'sweep'}")
    assert r.returncode == 0, r.stderr[-3000:]
    assert len(list((tmp_path / "sweep").rglob("results.json"))) == 4
    ev = _events(cache)
    per_model = pd.DataFrame(ev).groupby(["model", "split"]).size()
    # baseline (= quant=none) once per split, int8 once per split: Q + 1 = 2 passes over each of 3 splits
    assert len(ev) == 6, per_model
    assert (per_model == 1).all(), per_model
    assert set(per_model.index.get_level_values("split")) == {"calibration", "test", "ood"}


@pytest.mark.slow
def test_killed_sweep_resumes_only_missing_jobs(tmp_path):
    sweep = tmp_path / "sweep"
    args = [sys.executable, "-m", "uqcompress", "--multirun", "quant=none,int8", "selector.target=0.8,0.9",
            *FAST, f"hydra.sweep.dir={sweep}"]
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    p = subprocess.Popen(args, cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                         start_new_session=True)
    deadline = time.time() + 400
    while time.time() < deadline and len(list(sweep.rglob("results.json"))) < 2 and p.poll() is None:
        time.sleep(0.1)
    os.killpg(p.pid, signal.SIGKILL)
    p.wait()
    done_before = {q.parent: q.stat().st_mtime_ns for q in sweep.rglob("results.json")}
    assert 2 <= len(done_before) < 4, "the kill should land mid-sweep"
    r = subprocess.run(args, cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stderr[-3000:]
    after = {q.parent: q.stat().st_mtime_ns for q in sweep.rglob("results.json")}
    assert len(after) == 4
    for d, mtime in done_before.items():  # completed jobs were skipped, not recomputed
        assert after[d] == mtime
    assert (r.stdout + r.stderr).count("already has results; skipping") == len(done_before)


@pytest.mark.slow
def test_failing_job_is_recorded_and_sweep_goes_on(cli, tmp_path):
    sweep = tmp_path / "sweep"
    r = cli("--multirun", "selector.target=1.5,0.9", *FAST, "quant=none", f"hydra.sweep.dir={sweep}")
    assert r.returncode == 1, r.stderr[-3000:]  # the sweep went on, and its exit status says a job failed
    assert r.stderr.strip().splitlines()[-1].startswith("uqcompress: 1 of 2 sweep jobs failed")
    failed = list(sweep.rglob("failed.json"))
    assert len(failed) == 1 and len(list(sweep.rglob("results.json"))) == 1
    info = json.loads(failed[0].read_text())
    assert "selector.target=1.5" in info["error"] and info["config"]["selector"]["target"] == 1.5
    assert "Traceback" in info["traceback"]
    out = subprocess.run([sys.executable, "-m", "uqcompress.report", str(sweep), "--n-boot", "50"], cwd=ROOT,
                         env={**os.environ, "PYTHONPATH": str(ROOT)}, capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    md = (sweep / "report" / "summary.md").read_text()
    assert "## Failed jobs" in md and "selector.target=1.5" in md


@pytest.mark.slow
def test_joblib_launcher_runs_sweep_with_two_workers_and_report(cli, tmp_path):
    sweep = tmp_path / "sweep"
    r = cli("--multirun", "hydra/launcher=joblib", "hydra.launcher.n_jobs=2", "quant=none,int8,int8",
                "uncertainty=msp", "seed=0,1", *FAST[:-1], f"hydra.sweep.dir={sweep}")
    assert r.returncode == 0, r.stderr[-3000:]
    assert "Joblib.Parallel(n_jobs=2" in r.stdout + r.stderr
    assert len(list(sweep.rglob("results.json"))) == 4
    rep = subprocess.run([sys.executable, "-m", "uqcompress.report", str(sweep), "--n-boot", "100"], cwd=ROOT,
                         env={**os.environ, "PYTHONPATH": str(ROOT)}, capture_output=True, text=True)
    assert rep.returncode == 0, rep.stderr
    for name in ("summary.csv", "summary.md", "risk_coverage.png", "reliability.png", "confidence_id_vs_ood.png",
                 "flips_vs_kl.png", "accuracy_delta_vs_flips.png"):
        assert (sweep / "report" / name).is_file() and (sweep / "report" / name).stat().st_size > 0, name
    summary = pd.read_csv(sweep / "report" / "summary.csv")
    assert len(summary) == 4 and {"compressed.flips", "compressed.kl", "compressed.accuracy_ci_low"} <= set(summary)
    assert (summary["compressed.accuracy_ci_low"] <= summary["compressed.accuracy"]).all()
    # single runs wrote their own plots too, and the report did not overwrite them: its own are in report/
    assert len(list(sweep.rglob("risk_coverage.png"))) == 5


def test_submitit_cluster_config_composes_without_slurm():
    from hydra import compose, initialize_config_dir
    from hydra.utils import get_class

    with initialize_config_dir(str(ROOT / "uqcompress" / "conf"), version_base=None):
        cfg = compose("config", overrides=["hydra/launcher=cluster_slurm", "hydra.launcher.partition=gpu"],
                      return_hydra_config=True)
    launcher = cfg.hydra.launcher
    assert launcher._target_.endswith("submitit_launcher.SlurmLauncher")
    assert launcher.partition == "gpu" and launcher.timeout_min == 120 and launcher.array_parallelism == 32
    cls = get_class(launcher._target_)  # the plugin is installed and importable
    assert cls.__name__ == "SlurmLauncher"
    import submitit  # noqa: F401  (the executor the launcher uses)
