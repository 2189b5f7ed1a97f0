"""Issue 19: hyperparameter search with Hydra's Optuna sweeper on the job's objective (``objective.metric``,
``objective.direction``): the best trial is the best of what the jobs wrote, it is recorded in
``optimization_results.yaml``, and a rerun with the same seed finds the same best trial from the cache (every job
resumes, nothing is computed). A failed trial is a failed Optuna trial, not a crash; a bad objective is one line.
"""
from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import pytest
import yaml

from fault_helpers import FAST, cli, events

pytestmark = pytest.mark.skipif(importlib.util.find_spec("hydra_plugins.hydra_optuna_sweeper") is None,
                                reason="hydra-optuna-sweeper not installed (the sweep extra)")

SEARCH = ["hydra/sweeper=optuna", "hydra/sweeper/sampler=tpe", "hydra.sweeper.sampler.seed=7",
          "hydra.sweeper.sampler.n_startup_trials=4", "hydra.sweeper.n_trials=8", "hydra.sweeper.n_jobs=2",
          "selector.target=interval(0.5,0.99)", "uncertainty.temperature=interval(0.5,3.0)",
          "objective.metric=compressed.selective_risk", "objective.direction=minimize"]


def _trials(sweep: Path) -> dict[tuple[float, float], float]:
    """{(selector.target, uncertainty.temperature): compressed.selective_risk} of every job folder."""
    out = {}
    for p in sweep.rglob("results.json"):
        over = dict(line[2:].strip().split("=", 1) for line in (p.parent / ".hydra" / "overrides.yaml")
                    .read_text().splitlines() if line.startswith("- "))
        out[float(over["selector.target"]), float(over["uncertainty.temperature"])] = \
            json.loads(p.read_text())["compressed.selective_risk"]
    return out


@pytest.mark.slow
def test_optuna_search_records_a_reproducible_best_trial(tmp_path):
    cache, sweep = tmp_path / "cache", tmp_path / "sweep"
    args = ["--multirun", *SEARCH, *FAST, f"hydra.sweep.dir={sweep}"]
    r = cli(*args, cache=cache)
    out = r.stdout + r.stderr
    assert r.returncode == 0, out[-4000:]
    assert "Sampler: TPESampler" in out and "Directions: ['minimize']" in out

    trials = _trials(sweep)
    assert len(trials) == 8  # eight distinct parameter pairs, each a job folder with its results
    best = yaml.safe_load((sweep / "optimization_results.yaml").read_text())
    params = (best["best_params"]["selector.target"], best["best_params"]["uncertainty.temperature"])
    assert best["best_value"] == min(trials.values()) == trials[params]  # Optuna's best is the jobs' best
    assert all(0.5 <= t <= 0.99 and 0.5 <= tau <= 3.0 for t, tau in trials)
    assert len(set(trials.values())) > 1  # the search space changes the objective

    n_events = len(events(cache))
    again = cli(*args, cache=cache)
    assert again.returncode == 0, (again.stdout + again.stderr)[-4000:]
    assert yaml.safe_load((sweep / "optimization_results.yaml").read_text()) == best  # the same seed, the same best
    assert (again.stdout + again.stderr).count("already has results; skipping") == 8  # every trial resumed
    assert len(events(cache)) == n_events  # nothing computed again
    assert _trials(sweep) == trials


@pytest.mark.slow
def test_a_failed_trial_is_recorded_and_the_search_goes_on(finished_sweep, tmp_path):
    from fault_helpers import copy_sweep

    cache, _, _, _ = copy_sweep(finished_sweep, tmp_path)  # warm
    sweep = tmp_path / "search"
    # (not the grid sampler: hydra-optuna-sweeper 1.3 crashes telling it a failed trial, "Study.stop is supposed to
    # be invoked inside an objective function"); seed 0 draws 1.5 then 0.8
    r = cli("--multirun", "hydra/sweeper=optuna", "hydra/sweeper/sampler=random", "hydra.sweeper.sampler.seed=0",
            "hydra.sweeper.n_trials=2", "selector.target=choice(0.8,1.5)", "quant=int8", *FAST,
            f"hydra.sweep.dir={sweep}", cache=cache)
    out = r.stdout + r.stderr
    assert r.returncode == 1, out[-4000:]  # the sweep lists its failed job and exits 1 ...
    assert "Directions: ['maximize']" in out  # ... the default objective: compressed accuracy, maximised
    assert "Failed experiment" in out and "Traceback" not in out  # ... Optuna recorded a failed trial, no crash
    (bad,) = [p.parent for p in sweep.rglob("failed.json")]
    assert "selector.target=1.5" in bad.name
    best = yaml.safe_load((sweep / "optimization_results.yaml").read_text())
    (good,) = [p for p in sweep.rglob("results.json")]
    assert best["best_params"] == {"selector.target": 0.8}
    assert best["best_value"] == json.loads(good.read_text())["compressed.accuracy"]


def test_sweeper_direction_that_contradicts_the_objective_is_refused(tmp_path):
    r = cli("--multirun", "hydra/sweeper=optuna", "hydra.sweeper.direction=minimize", "hydra.sweeper.n_trials=1",
            "selector.target=interval(0.5,0.9)", *FAST, f"hydra.sweep.dir={tmp_path / 's'}", cache=tmp_path / "c")
    assert r.returncode == 2
    assert r.stderr.strip().splitlines()[-1] == (
        "uqcompress: error: hydra.sweeper.direction=minimize but objective.direction=maximize; set only "
        "objective.direction (the sweeper follows it)")
    assert not (tmp_path / "c" / "events.jsonl").exists()  # refused before any job


@pytest.mark.slow
def test_an_unknown_objective_names_the_close_matches_and_a_fixed_rerun_resumes(finished_sweep, tmp_path):
    from fault_helpers import copy_sweep

    cache, sweep, args, jobs = copy_sweep(finished_sweep, tmp_path)
    r = cli(*args, "objective.metric=compressed.selective_rsk", cache=cache)  # the same jobs, a typo
    assert r.returncode == 1, (r.stdout + r.stderr)[-3000:]
    for d in jobs.values():
        error = json.loads((d / "failed.json").read_text())["error"]
        assert error == ("objective.metric='compressed.selective_rsk' is not a key of results.json; close matches: "
                         "compressed.selective_risk, compressed.selective_risk_ci_low, "
                         "compressed.selective_risk_ci_high"), error
        assert (d / "results.json").is_file()  # the run itself is kept
    n_events = len(events(cache))
    fixed = cli(*args, "objective.metric=compressed.selective_risk", cache=cache)
    assert fixed.returncode == 0, (fixed.stdout + fixed.stderr)[-3000:]
    assert (fixed.stdout + fixed.stderr).count("already has results; skipping") == 2  # objective is not in the key
    assert not list(sweep.rglob("failed.json")) and len(events(cache)) == n_events
