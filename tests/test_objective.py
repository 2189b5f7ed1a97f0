"""uqcompress.objective: what a sweep job returns, checked up front; an Optuna sweeper follows objective.direction."""
from __future__ import annotations

import enum
import importlib.util
import logging
from pathlib import Path

import pytest

from uqcompress.objective import objective_settings, objective_value, sweeper_direction

ROOT = Path(__file__).resolve().parents[1]
RESULTS = {"compressed.accuracy": 0.91, "compressed.flips": 0.03, "compressed.selective_risk": 0.02,
           "compressed.flip_catch_rate": float("nan"), "baseline.accuracy": 0.92, "config.quant": "int8",
           "n_test": 300}


def test_settings_default_and_explicit():
    assert objective_settings({}) == ("compressed.accuracy", "maximize")
    assert objective_settings({"objective": {"metric": "compressed.flips", "direction": "minimize"}}) == \
        ("compressed.flips", "minimize")


@pytest.mark.parametrize("objective, message", [
    ({"metric": "compressed.flips", "direction": "down"}, "objective.direction='down' is not one of: maximize, "
                                                           "minimize"),
    ({"metric": ""}, "objective.metric='' must name a key of results.json"),
    ({"metric": 3}, "objective.metric=3 must name a key of results.json"),
    ({"metric": "compressed.flips", "goal": "min"}, "objective has unknown option(s) ['goal']"),
    ("compressed.flips", "objective='compressed.flips' must be a group of options"),
])
def test_settings_refused_in_one_line(objective, message):
    with pytest.raises(ValueError) as e:
        objective_settings({"objective": objective})
    assert str(e.value).startswith(message) and "\n" not in str(e.value)


def test_value_is_the_results_number():
    assert objective_value(RESULTS, "compressed.flips") == 0.03
    assert objective_value(RESULTS, "n_test") == 300.0 and isinstance(objective_value(RESULTS, "n_test"), float)
    import numpy as np  # what the pipeline's metrics may hold before they are written

    assert objective_value({"x": np.float32(0.5)}, "x") == 0.5


def test_undefined_value_is_a_failed_trial_not_nan(caplog):
    """The released Optuna sweeper crashes on a NaN return (facebookresearch/hydra#2237): None is a failed trial."""
    with caplog.at_level(logging.WARNING, logger="uqcompress"):
        assert objective_value(RESULTS, "compressed.flip_catch_rate") is None
        assert objective_value({"x": None}, "x") is None  # null in results.json read without the NaN mapping
    assert "objective compressed.flip_catch_rate is undefined for this run (NaN)" in caplog.text


def test_unknown_or_non_numeric_metric_names_close_matches():
    with pytest.raises(ValueError) as e:
        objective_value(RESULTS, "compressed.flip")
    assert str(e.value) == ("objective.metric='compressed.flip' is not a key of results.json; close matches: "
                            "compressed.flips, compressed.flip_catch_rate, compressed.selective_risk")
    with pytest.raises(ValueError, match=r"is 'int8' in results.json, not a number"):
        objective_value(RESULTS, "config.quant")
    with pytest.raises(ValueError, match="numeric keys look like: baseline.accuracy, compressed.accuracy"):
        objective_value(RESULTS, "zzz")
    with pytest.raises(ValueError, match="not a number"):
        objective_value({"flag": True}, "flag")  # a bool is not an objective


class Direction(enum.Enum):  # what hydra-optuna-sweeper's structured config holds
    minimize = 1
    maximize = 2


def test_sweeper_direction_follows_the_objective():
    assert sweeper_direction({"max_batch_size": None}, [], "maximize") is None  # the basic sweeper: nothing to set
    assert sweeper_direction({"direction": Direction.minimize}, [], "maximize") == "maximize"
    assert sweeper_direction({"direction": "maximize"}, [], "maximize") is None
    assert sweeper_direction({"direction": Direction.minimize}, ["hydra.sweeper.direction=minimize"],
                             "minimize") is None
    with pytest.raises(ValueError, match="hydra.sweeper.direction=minimize but objective.direction=maximize"):
        sweeper_direction({"direction": Direction.minimize}, ["hydra.sweeper.direction=minimize"], "maximize")
    with pytest.raises(ValueError, match="asks for several objectives"):
        sweeper_direction({"direction": ["minimize", "maximize"]}, [], "maximize")


@pytest.mark.skipif(importlib.util.find_spec("hydra_plugins.hydra_optuna_sweeper") is None,
                    reason="hydra-optuna-sweeper not installed (the sweep extra)")
def test_sweep_status_points_the_optuna_sweeper_before_it_is_made():
    """The callback runs before Hydra instantiates the sweeper from the same config (hydra.multirun)."""
    from hydra import compose, initialize_config_dir
    from hydra.utils import instantiate

    from uqcompress.app import SweepStatus

    with initialize_config_dir(str(ROOT / "uqcompress" / "conf"), version_base=None):
        cfg = compose("config", overrides=["hydra/sweeper=optuna", "objective.metric=compressed.flips",
                                           "objective.direction=minimize"], return_hydra_config=True)
        default = compose("config", overrides=["hydra/sweeper=optuna"], return_hydra_config=True)
    SweepStatus._follow_objective(cfg)
    SweepStatus._follow_objective(default)
    assert instantiate(cfg.hydra.sweeper).sweeper._get_directions() == ["minimize"]
    # the default objective, compressed accuracy, is maximised (the plugin's own default is minimize)
    assert instantiate(default.hydra.sweeper).sweeper._get_directions() == ["maximize"]
