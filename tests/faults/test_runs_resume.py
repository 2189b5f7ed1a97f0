"""Issue 16, case 1: resume is bound to the config, not to the folder.

Before (main 2e17459): ``python -m uqcompress hydra.run.dir=X`` then ``... quant=fp16 uncertainty=entropy
hydra.run.dir=X`` exited 0 with the int8/msp results while ``.hydra/config.yaml`` said fp16/entropy.
"""
from __future__ import annotations

import json

import pytest
import yaml

import uqcompress
from uqcompress.app import NON_RESULT_KEYS, run_fingerprint

from fault_helpers import FAST, ROOT, cli, copy_sweep, numbers

CONF = {"model": {"name": "small_cnn", "epochs": 2}, "quant": {"name": "int8"}, "seed": 0, "limit": 300,
        "fit_limit": 300, "device": "auto", "latency": {"repeats": 2}, "progress": False, "plots": False,
        "resume": True, "threads": None, "sweep_name": "default", "cache_dir": None}


def test_fingerprint_ignores_only_keys_that_do_not_change_results(monkeypatch):
    fp = run_fingerprint(CONF)
    for key, other in [("progress", True), ("plots", True), ("resume", False), ("threads", 4),
                       ("sweep_name", "x"), ("cache_dir", "/elsewhere"),
                       ("objective", {"metric": "compressed.flips", "direction": "minimize"})]:
        assert run_fingerprint({**CONF, key: other}) == fp, key
    for key, other in [("seed", 1), ("limit", 299), ("device", "cpu"), ("quant", {"name": "fp16"}),
                       ("model", {"name": "small_cnn", "epochs": 3}), ("latency", {"repeats": 3})]:
        assert run_fingerprint({**CONF, key: other}) != fp, key
    monkeypatch.setattr(uqcompress, "__version__", "99.0")
    assert run_fingerprint(CONF) != fp  # a new uqcompress recomputes


def test_fingerprint_exclusions_match_the_sweep_folder_names():
    """A key that does not change results must not split a sweep into two folders either, and vice versa."""
    cfg = yaml.safe_load((ROOT / "uqcompress" / "conf" / "config.yaml").read_text())
    excluded = set(cfg["hydra"]["job"]["config"]["override_dirname"]["exclude_keys"]) - {"hydra.launcher.n_jobs"}
    assert {k.split(".")[0] for k in excluded} == set(NON_RESULT_KEYS)
    assert set(NON_RESULT_KEYS) <= set(cfg)  # each is a real top-level option
    for key in NON_RESULT_KEYS:  # a group of options (objective): the group and each of its options
        if isinstance(cfg[key], dict):
            assert {key} | {f"{key}.{sub}" for sub in cfg[key]} <= excluded, key


@pytest.mark.slow
def test_single_run_refuses_a_folder_holding_another_configs_results(finished_sweep, tmp_path):
    cache, _, _, _ = copy_sweep(finished_sweep, tmp_path)  # warm: the model is trained, int8 calibrated
    run = tmp_path / "X"
    r = cli(*FAST, f"hydra.run.dir={run}", cache=cache)
    assert r.returncode == 0, r.stderr[-2000:]
    first = json.loads((run / "results.json").read_text())
    assert first["run.fingerprint"] and first["run.uqcompress_version"] == uqcompress.__version__

    # the same config with only non-result keys changed resumes
    same = cli(*FAST, "plots=true", "progress=true", "threads=2", f"hydra.run.dir={run}", cache=cache)
    assert same.returncode == 0 and "already has results; skipping" in same.stdout + same.stderr
    assert json.loads((run / "results.json").read_text()) == first

    # the fault of the issue: another config into the same folder
    other = cli(*FAST, "quant=fp16", "uncertainty=entropy", f"hydra.run.dir={run}", cache=cache)
    assert other.returncode == 2
    lines = other.stderr.strip().splitlines()
    assert lines[-1].startswith(f"uqcompress: error: {run} already holds results of another config")
    assert "resume=false" in lines[-1] and "Traceback" not in other.stderr
    assert json.loads((run / "results.json").read_text()) == first  # untouched

    # resume=false recomputes there, keeping the old results aside
    again = cli(*FAST, "quant=fp16", "uncertainty=entropy", "resume=false", f"hydra.run.dir={run}", cache=cache)
    assert again.returncode == 0, again.stderr[-2000:]
    new = json.loads((run / "results.json").read_text())
    assert (new["config.quant"], new["config.uncertainty"]) == ("fp16", "entropy")
    assert new["run.fingerprint"] != first["run.fingerprint"]
    assert json.loads((run / "results.previous.json").read_text()) == first


@pytest.mark.slow
def test_sweep_recomputes_results_of_another_config_or_version(finished_sweep, tmp_path):
    cache, sweep, args, jobs = copy_sweep(finished_sweep, tmp_path)
    clean = {q: numbers(d) for q, d in jobs.items()}
    # inject: the int8 job's folder gets the none job's results; the none job's file loses its fingerprint (as
    # written by uqcompress 0.1.0 on main)
    (jobs["int8"] / "results.json").write_text((jobs["none"] / "results.json").read_text())
    old = json.loads((jobs["none"] / "results.json").read_text())
    del old["run.fingerprint"]
    (jobs["none"] / "results.json").write_text(json.dumps(old))

    again = cli(*args, cache=cache)
    assert again.returncode == 0, again.stderr[-2000:]
    for q, d in jobs.items():
        assert numbers(d) == clean[q], q  # each recomputed to its own config's numbers
    stale = [line for line in (again.stdout + again.stderr).splitlines() if "recomputing (old results kept" in line]
    assert len(stale) == 2, again.stderr[-3000:]
    assert any("another config" in line and str(jobs["int8"]) in line for line in stale)
    assert any("without a config fingerprint" in line and str(jobs["none"]) in line for line in stale)
    assert json.loads((jobs["int8"] / "results.previous.json").read_text())["config.quant"] == "none"

    third = cli(*args, cache=cache)  # now everything matches: both skipped
    assert third.returncode == 0 and (third.stdout + third.stderr).count("already has results; skipping") == 2
