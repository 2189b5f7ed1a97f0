"""The budget search as pure functions: walk a layer ranking, pick the model, compare rankings.

Nothing here touches a model: a walk asks ``evaluate(k)`` for the measures of the candidate with its ``k`` most
sensitive layers kept float (the caller builds and evaluates it, cached), so the logic is tested on hand-made
numbers (``tests/tune/test_search.py``).

- :func:`first_holding`: keep layers float one at a time, in ranking order, until a rule holds (the budget, or the
  accuracy-only control rule of NNCF's ``quantize_with_accuracy_control``: accuracy drop <= ``max_drop``).
- :func:`choose`: the smallest candidate that meets the budget; else the closest one and the terms it misses.
- :func:`pareto_front`: the candidates no other beats on both size and flips.

Example:
    >>> from uqcompress.tune.budget import Budget
    >>> from uqcompress.tune.search import first_holding
    >>> flips = [0.08, 0.05, 0.035, 0.028, 0.02]          # measured with k = 0..4 layers kept float
    >>> first_holding(lambda k: {"flips": flips[k]}, Budget(flips=0.03).holds, max_k=4)
    3
    >>> first_holding(lambda k: {"flips": flips[k]}, Budget(flips=0.01).holds, max_k=4) is None
    True
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Callable, Mapping, Sequence

import numpy as np

from uqcompress.tune.budget import Budget

Measures = Mapping[str, float]


def first_holding(evaluate: Callable[[int], Measures], holds: Callable[[Measures], bool], max_k: int,
                  start: int = 0) -> int | None:
    """The smallest ``k`` in ``[start, max_k]`` whose measures satisfy ``holds``, evaluating ``k = start, start+1,
    ...`` in order and stopping at the first that holds (None when none does)."""
    for k in range(start, max_k + 1):
        if holds(evaluate(k)):
            return k
    return None


def accuracy_control(max_drop: float) -> Callable[[Measures], bool]:
    """NNCF's ``quantize_with_accuracy_control`` stopping rule: the accuracy drop is at most ``max_drop``.

    >>> accuracy_control(0.01)({"accuracy_drop": 0.012}), accuracy_control(0.01)({"accuracy_drop": 0.01})
    (False, True)
    """
    def holds(m: Measures) -> bool:
        drop = m.get("accuracy_drop", math.nan)
        return drop is not None and drop <= max_drop + 1e-12

    return holds


@dataclass
class Candidate:
    """One model the search may choose: a scheme, with some layers kept float.

    Attributes:
        name: a short label for tables and plots (``int8``, ``int8 +7 fp32 (revert)``).
        role: ``scheme`` (a candidate scheme as is), ``search`` (budget walk), ``control`` (accuracy-only control).
        quant: the scheme config that rebuilds it (``quant.skip`` lists the float layers).
        fp32_layers: the layers kept float, in the order they were reverted.
        size_bytes: serialized weight size.
        calibration: budget measures on the calibration split (what the search decides on).
        test: results on the test split (results.json keys), once evaluated.
        ranking: the sensitivity ranking whose walk produced it.
        test_measures: the budget's terms on the test split, once evaluated.
    """

    name: str
    role: str
    quant: dict[str, Any]
    fp32_layers: list[str]
    size_bytes: int
    calibration: dict[str, float]
    test: dict[str, Any] | None = None
    ranking: str | None = None
    test_measures: dict[str, float] | None = None

    def key(self) -> tuple:
        """Identity: the scheme config (two roles may reach the same model)."""
        return (self.quant.get("name"), tuple(sorted(self.fp32_layers)),
                tuple(sorted((k, str(v)) for k, v in self.quant.items() if k != "skip")))


@dataclass
class Choice:
    """What :func:`choose` decided: ``chosen`` (or None), and otherwise the ``closest`` candidate and its misses."""

    chosen: Candidate | None
    closest: Candidate | None
    misses: str = ""


def choose(candidates: Sequence[Candidate], budget: Budget) -> Choice:
    """The smallest candidate whose calibration measures meet ``budget`` (ties: fewer flips, then fewer float
    layers); when none does, the one closest to it (:meth:`Budget.excess`, ties: smaller) and what it misses."""
    if not candidates:
        raise ValueError("no candidate to choose from")
    meeting = [c for c in candidates if budget.holds(c.calibration)]
    if meeting:
        best = min(meeting, key=lambda c: (c.size_bytes, c.calibration.get("flips", math.inf), len(c.fp32_layers)))
        return Choice(best, None)
    closest = min(candidates, key=lambda c: (budget.excess(c.calibration), c.size_bytes))
    return Choice(None, closest, budget.describe(closest.calibration))


def pareto_front(points: Sequence[tuple[float, float]]) -> list[int]:
    """Indices of the points (size, flips) that no other point matches or beats on both with one strictly better,
    sorted by size.

    >>> pareto_front([(1.0, 0.0), (0.3, 0.08), (0.4, 0.03), (0.5, 0.05)])
    [1, 2, 0]
    """
    out = []
    for i, (s, f) in enumerate(points):
        dominated = any((s2 <= s and f2 <= f) and (s2 < s or f2 < f) for j, (s2, f2) in enumerate(points) if j != i)
        if not dominated and not (math.isnan(s) or math.isnan(f)):
            out.append(i)
    return sorted(out, key=lambda i: (points[i][0], points[i][1]))


def greedy_effects(values: Sequence[float]) -> list[float]:
    """What each step of a walk bought: ``values[k-1] - values[k]`` for k = 1.. (e.g. the KL removed by keeping the
    k-th layer float).

    >>> greedy_effects([0.5, 0.3, 0.25])
    [0.2, 0.04999999999999999]
    """
    return [values[k - 1] - values[k] for k in range(1, len(values))]


def rank_agreement(scores: Sequence[float], effects: Sequence[float]) -> float:
    """Spearman correlation between a ranking's scores of the walked layers and what keeping each float really
    bought in the walk (NaN with fewer than 3 layers or a constant side)."""
    from uqcompress import metrics as M

    if len(scores) < 3 or len(scores) != len(effects):
        return math.nan
    if np.ptp(np.asarray(scores, float)) == 0 or np.ptp(np.asarray(effects, float)) == 0:
        return math.nan
    return float(M.spearman(np.asarray(scores, float), np.asarray(effects, float)))


def better_ranking(needed: Mapping[str, int | None], sizes: Mapping[str, float]) -> str:
    """The ranking that met the budget with the fewest layers kept float (ties: the smaller model; a ranking that
    never met it loses; all failing: the first).

    >>> better_ranking({"revert": 4, "alone": 7}, {"revert": 5e6, "alone": 6e6})
    'revert'
    >>> better_ranking({"revert": None, "alone": 9}, {"revert": 1e7, "alone": 6e6})
    'alone'
    """
    names = list(needed)
    return min(names, key=lambda r: (needed[r] is None, needed[r] if needed[r] is not None else 0,
                                     sizes.get(r, math.inf), names.index(r)))


__all__ = ["Candidate", "Choice", "accuracy_control", "better_ranking", "choose", "first_holding",
           "greedy_effects", "pareto_front", "rank_agreement"]
