"""What a sweep job returns to its sweeper: one number of its ``results.json``, and the direction to optimise it.

``objective.metric`` names any numeric key of ``results.json`` (default ``compressed.accuracy``);
``objective.direction`` is ``maximize`` (default) or ``minimize``. A grid sweep ignores the value; Hydra's Optuna
sweeper (``hydra/sweeper=optuna``) searches on it, and :class:`uqcompress.app.SweepStatus` sets its direction from
``objective.direction`` before it starts (refusing an explicit ``hydra.sweeper.direction`` that disagrees).

A job that fails returns ``None``: the sweeper (hydra-optuna-sweeper 1.3) records the trial as failed and goes on.
An undefined objective (NaN, e.g. ``compressed.flip_catch_rate`` when nothing flipped) is also returned as ``None``
with one warning: the released sweeper crashes on a NaN return (facebookresearch/hydra#2237, fixed after 1.3.0).
A metric that is not a key of ``results.json`` is one error naming the close matches; the results stay written, so
fixing the name and rerunning resumes every job without recomputing it.

Example:
    >>> from uqcompress.objective import objective_settings, objective_value
    >>> metric, direction = objective_settings({"objective": {"metric": "compressed.flips", "direction": "minimize"}})
    >>> objective_value({"compressed.flips": 0.02, "compressed.accuracy": 0.9}, metric)
    0.02
    >>> objective_value({"compressed.flips": 0.02}, "compressed.flip")
    Traceback (most recent call last):
    ...
    ValueError: objective.metric='compressed.flip' is not a key of results.json; close matches: compressed.flips
"""
from __future__ import annotations

import difflib
import logging
import math
import numbers
from typing import Any, Mapping

log = logging.getLogger("uqcompress")

DEFAULT_METRIC = "compressed.accuracy"
DIRECTIONS = ("maximize", "minimize")


def objective_settings(conf: Mapping[str, Any]) -> tuple[str, str]:
    """``(metric, direction)`` of a run config, checked before any work (one-line ``ValueError`` otherwise)."""
    obj = conf.get("objective") or {}
    if not isinstance(obj, Mapping):
        raise ValueError(f"objective={obj!r} must be a group of options: objective.metric=compressed.flips "
                         "objective.direction=minimize")
    unknown = sorted(set(obj) - {"metric", "direction"})
    if unknown:
        raise ValueError(f"objective has unknown option(s) {unknown}; it takes: metric, direction")
    metric = obj.get("metric", DEFAULT_METRIC)
    direction = obj.get("direction", "maximize")
    if not isinstance(metric, str) or not metric.strip():
        raise ValueError(f"objective.metric={metric!r} must name a key of results.json, e.g. compressed.flips")
    if direction not in DIRECTIONS:
        raise ValueError(f"objective.direction={direction!r} is not one of: {', '.join(DIRECTIONS)}")
    return metric, direction


def _numeric(v: Any) -> bool:
    return isinstance(v, numbers.Real) and not isinstance(v, bool)


def objective_value(results: Mapping[str, Any], metric: str) -> float | None:
    """The objective of a finished run: ``float(results[metric])``, ``None`` when it is undefined (NaN / null).

    Raises a one-line ``ValueError`` naming the close matches when ``metric`` is not a numeric key of ``results``.
    """
    value = results.get(metric)
    if metric in results and (value is None or (_numeric(value) and math.isnan(value))):
        log.warning("objective %s is undefined for this run (NaN); the sweeper records the trial as failed", metric)
        return None
    if not _numeric(value):
        numeric = [k for k, v in results.items() if _numeric(v) or v is None]
        close = difflib.get_close_matches(metric, numeric, n=3, cutoff=0.6)
        hint = (f"close matches: {', '.join(close)}" if close else
                f"numeric keys look like: {', '.join(sorted(numeric)[:5])}, ...")
        what = f"is {value!r} in results.json, not a number" if metric in results else "is not a key of results.json"
        raise ValueError(f"objective.metric={metric!r} {what}; {hint}")
    return float(value)


def sweeper_direction(sweeper: Mapping[str, Any], hydra_overrides: list[str], direction: str) -> str | None:
    """The direction to set on an Optuna-like sweeper config (one with a ``direction``), or None to leave it.

    Raises a one-line ``ValueError`` when ``hydra.sweeper.direction`` was set explicitly and disagrees with
    ``objective.direction``, or asks for several objectives (a job returns one number).
    """
    if "direction" not in sweeper:
        return None  # the basic sweeper: a grid, no direction
    have = sweeper["direction"]
    have = getattr(have, "name", have)  # an Enum from the plugin's structured config
    if not isinstance(have, str):  # a ListConfig / list of directions
        raise ValueError(f"hydra.sweeper.direction={list(have)} asks for several objectives; a uqcompress job returns "
                         "one (objective.metric), set hydra.sweeper.direction to one value")
    explicit = any(o.split("=", 1)[0].lstrip("+~") == "hydra.sweeper.direction" for o in hydra_overrides)
    if explicit and str(have) != direction:
        raise ValueError(f"hydra.sweeper.direction={have} but objective.direction={direction}; set only "
                         "objective.direction (the sweeper follows it)")
    return None if str(have) == direction else direction
