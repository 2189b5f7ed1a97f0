"""The budget search on hand-made candidates: where each walk stops, where the accuracy-only control stops, which
model is chosen, and what is reported when none meets the budget."""
from __future__ import annotations

import math

import pytest
import scipy.stats

from uqcompress.tune.budget import Budget
from uqcompress.tune.search import (Candidate, accuracy_control, better_ranking, choose, first_holding,
                                    greedy_effects, pareto_front, rank_agreement)

# a walk over one ranking: measures with the first k layers kept float (k = 0 is the int8 model)
WALK = [
    {"flips": 0.080, "kl": 0.096, "accuracy_drop": 0.019},
    {"flips": 0.061, "kl": 0.060, "accuracy_drop": 0.012},
    {"flips": 0.052, "kl": 0.041, "accuracy_drop": 0.008},   # accuracy control (max_drop 0.01) stops here
    {"flips": 0.037, "kl": 0.030, "accuracy_drop": 0.009},
    {"flips": 0.029, "kl": 0.022, "accuracy_drop": 0.004},   # flips budget 0.03 holds from here
    {"flips": 0.021, "kl": 0.015, "accuracy_drop": 0.003},
]


class Recorder:
    """evaluate(k) over WALK that remembers which k were asked for."""

    def __init__(self, walk=WALK):
        self.walk, self.asked = walk, []

    def __call__(self, k):
        self.asked.append(k)
        return self.walk[k]


def test_walk_stops_at_the_first_layer_where_the_budget_holds():
    ev = Recorder()
    assert first_holding(ev, Budget(flips=0.03).holds, max_k=5) == 4
    assert ev.asked == [0, 1, 2, 3, 4]  # one layer at a time, nothing after the stop


def test_walk_with_several_terms_needs_all_of_them():
    assert first_holding(Recorder(), Budget(flips=0.03, kl=0.016).holds, max_k=5) == 5
    assert first_holding(Recorder(), Budget(flips=0.04, accuracy_drop=0.005).holds, max_k=5) == 4


def test_walk_that_never_holds_returns_none_after_max_k():
    ev = Recorder()
    assert first_holding(ev, Budget(flips=0.01).holds, max_k=5) is None
    assert ev.asked == [0, 1, 2, 3, 4, 5]
    ev = Recorder()
    assert first_holding(ev, Budget(flips=0.03).holds, max_k=3) is None  # tune.max_float_layers=3
    assert ev.asked == [0, 1, 2, 3]


def test_accuracy_control_stops_earlier_than_the_flips_budget():
    """NNCF's rule (drop <= max_drop) is met with 2 layers float while flips are still 0.052: what controlling
    flips buys over controlling accuracy on the same ranking."""
    control = first_holding(Recorder(), accuracy_control(0.01), max_k=5)
    flips = first_holding(Recorder(), Budget(flips=0.03).holds, max_k=5)
    assert (control, flips) == (2, 4)
    assert WALK[control]["flips"] > 0.03


def test_accuracy_control_can_stop_later():
    """With a tight max_drop the control walks past the flips budget."""
    assert first_holding(Recorder(), accuracy_control(0.0035), max_k=5) == 5
    assert first_holding(Recorder(), Budget(flips=0.04).holds, max_k=5) == 3


def test_accuracy_control_holds_at_once_when_int8_loses_little():
    assert first_holding(Recorder(), accuracy_control(0.02), max_k=5) == 0
    assert accuracy_control(0.01)({"accuracy_drop": float("nan")}) is False


def cand(name, size, **measures):
    return Candidate(name, "scheme", {"name": name.split()[0]}, [], size, dict(measures))


def test_choose_takes_the_smallest_candidate_that_meets_the_budget():
    cands = [cand("fp16", 8_000_000, flips=0.001, kl=0.0), cand("int8", 4_000_000, flips=0.08, kl=0.1),
             cand("int8 +4 fp32", 5_000_000, flips=0.029, kl=0.02),
             cand("int8 +9 fp32", 6_000_000, flips=0.01, kl=0.01)]
    choice = choose(cands, Budget(flips=0.03))
    assert choice.chosen.name == "int8 +4 fp32" and choice.closest is None and choice.misses == ""
    assert choose(cands, Budget(flips=0.005)).chosen.name == "fp16"


def test_choose_breaks_size_ties_on_flips_then_float_layers():
    a, b = cand("int8 a", 5_000_000, flips=0.02), cand("int8 b", 5_000_000, flips=0.01)
    assert choose([a, b], Budget(flips=0.03)).chosen is b


def test_no_candidate_reports_the_closest_and_what_it_misses():
    cands = [cand("int8", 4_000_000, flips=0.08, kl=0.1, accuracy_drop=0.02),
             cand("int8 +50 fp32", 15_000_000, flips=0.032, kl=0.01, accuracy_drop=0.002),
             cand("int8_dynamic", 15_500_000, flips=0.05, kl=0.0, accuracy_drop=0.0)]
    choice = choose(cands, Budget(flips=0.03, kl=0.05))
    assert choice.chosen is None
    assert choice.closest.name == "int8 +50 fp32"  # misses flips by 7% of its limit; int8_dynamic by 67%
    assert choice.misses == "flips 0.032 > 0.03"


def test_excess_is_relative_and_absolute_at_a_zero_limit():
    b = Budget(flips=0.02, kl=0.0)
    assert b.excess({"flips": 0.03, "kl": 0.0}) == pytest.approx(0.5)
    assert b.excess({"flips": 0.01, "kl": 0.004}) == pytest.approx(0.004)
    assert b.excess({"flips": 0.01, "kl": 0.0}) == 0
    assert math.isinf(b.excess({"flips": float("nan"), "kl": 0.0}))


def test_pareto_front_by_brute_force():
    pts = [(1.0, 0.0), (0.27, 0.08), (0.4, 0.03), (0.5, 0.05), (0.4, 0.04), (0.27, 0.09)]
    front = pareto_front(pts)
    dominated = {i for i, (s, f) in enumerate(pts)
                 for j, (s2, f2) in enumerate(pts) if j != i and s2 <= s and f2 <= f and (s2, f2) != (s, f)}
    assert set(front) == set(range(len(pts))) - dominated == {0, 1, 2}
    assert front == [1, 2, 0]  # by size


def test_greedy_effects_and_rank_agreement_match_scipy():
    effects = greedy_effects([w["kl"] for w in WALK])
    assert effects == pytest.approx([0.036, 0.019, 0.011, 0.008, 0.007])
    scores = [0.05, 0.01, 0.02, 0.004, 0.003]
    assert rank_agreement(scores, effects) == pytest.approx(scipy.stats.spearmanr(scores, effects)[0])
    assert math.isnan(rank_agreement([1.0, 2.0], [1.0, 2.0]))      # too few layers
    assert math.isnan(rank_agreement([1.0, 1.0, 1.0], [1.0, 2.0, 3.0]))  # constant scores


def test_better_ranking_needs_fewer_layers_then_is_smaller():
    assert better_ranking({"revert": 4, "alone": 7}, {"revert": 6e6, "alone": 5e6}) == "revert"
    assert better_ranking({"revert": 5, "alone": 5}, {"revert": 6e6, "alone": 5e6}) == "alone"
    assert better_ranking({"revert": None, "alone": 9}, {}) == "alone"
    assert better_ranking({"revert": None, "alone": None}, {}) == "revert"
