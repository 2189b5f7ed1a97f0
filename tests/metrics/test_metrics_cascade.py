"""Cascade metrics (defer to the baseline where the compressed model abstains) against hand computations and
brute-force loops over thresholds."""
import doctest
import importlib
import math

import numpy as np
import pytest
import torch
from metric_data import softmax_probs, tied_probs

from uqcompress import metrics as M


def test_docstring_examples():
    module = importlib.import_module("uqcompress.metrics.cascade")   # the package attribute is the function
    result = doctest.testmod(module, optionflags=doctest.ELLIPSIS)
    assert result.attempted > 0 and result.failed == 0


def test_cascade_hand_computed():
    # row: base pred / comp pred / label / accepted -> cascade answer
    # 0: 0 / 0 / 0 / yes -> 0 (right, agrees)        1: 0 / 1 / 0 / no  -> 0 (deferred: right, agrees)
    # 2: 1 / 0 / 1 / yes -> 0 (C->I, disagrees)      3: 1 / 1 / 0 / no  -> 1 (deferred: wrong, agrees)
    # 4: 0 / 1 / 1 / yes -> 1 (I->C, disagrees)
    base = np.array([[0.9, 0.1], [0.6, 0.4], [0.3, 0.7], [0.2, 0.8], [0.7, 0.3]])
    comp = np.array([[0.8, 0.2], [0.4, 0.6], [0.6, 0.4], [0.1, 0.9], [0.4, 0.6]])
    out = M.cascade(base, comp, [0, 0, 1, 0, 1], [True, False, True, False, True])
    assert out == {"accuracy": 0.6, "deferral_rate": 0.4, "agreement": 0.6, "flips": 0.4, "c2i": 0.2, "i2c": 0.2}


def test_cascade_limits_and_random_inputs_match_a_loop():
    rng = np.random.default_rng(0)
    base, comp = softmax_probs(rng, 3000, 7), tied_probs(rng, 3000, 7)
    y = rng.integers(0, 7, 3000)
    every = M.cascade(base, comp, y, np.ones(3000, bool))        # no deferral = the compressed model alone
    f = M.flips(base, comp, y)
    assert every["accuracy"] == M.accuracy(comp, y) and every["deferral_rate"] == 0.0
    assert (every["agreement"], every["flips"]) == (f["agreement"], f["flips"])
    none = M.cascade(base, comp, y, np.zeros(3000, bool))        # everything deferred = the baseline
    assert none == {"accuracy": M.accuracy(base, y), "deferral_rate": 1.0, "agreement": 1.0, "flips": 0.0,
                    "c2i": 0.0, "i2c": 0.0}
    acc = torch.from_numpy(rng.random(3000) < 0.7)
    got = M.cascade(torch.from_numpy(base).float(), torch.from_numpy(comp), torch.from_numpy(y), acc)
    b = torch.from_numpy(base).float().numpy().argmax(1)
    c = comp.argmax(1)
    answer = [c[i] if acc[i] else b[i] for i in range(3000)]
    assert got["accuracy"] == pytest.approx(np.mean([answer[i] == y[i] for i in range(3000)]), abs=1e-15)
    assert got["agreement"] == pytest.approx(np.mean([answer[i] == b[i] for i in range(3000)]), abs=1e-15)
    assert got["c2i"] == pytest.approx(np.mean([(b[i] == y[i]) and answer[i] != y[i] for i in range(3000)]), abs=1e-15)
    assert got["deferral_rate"] == pytest.approx(1 - float(acc.double().mean()), abs=1e-15)


def test_cascade_cost():
    assert M.cascade_cost(0.0, 0.25, 2.0) == 0.125 and M.cascade_cost(1.0, 0.25, 2.0) == 1.125
    assert math.isnan(M.cascade_cost(float("nan"), 0.25, 2.0))
    with pytest.raises(ValueError, match="latency_baseline=0"):
        M.cascade_cost(0.5, 0.25, 0)
    with pytest.raises(ValueError, match="deferral_rate=1.5"):
        M.cascade_cost(1.5, 0.25, 1.0)


def brute_force_curve(base_pred, comp_pred, y, conf):
    """Every threshold (each distinct confidence, plus +inf), cascade recomputed from scratch."""
    points = []
    for t in sorted(set(conf.tolist())) + [math.inf]:
        answer = np.where(conf >= t, comp_pred, base_pred)
        points.append(((conf < t).mean(), (answer == y).mean(), (answer == base_pred).mean(), t))
    return sorted(points)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_curve_matches_brute_force_with_ties(seed):
    rng = np.random.default_rng(seed)
    n = 400
    base_pred, comp_pred = rng.integers(0, 4, n), rng.integers(0, 4, n)
    comp_pred = np.where(rng.random(n) < 0.7, base_pred, comp_pred)
    y = np.where(rng.random(n) < 0.8, base_pred, rng.integers(0, 4, n))
    conf = np.round(rng.random(n), 1 + seed)                 # seed 0: 11 distinct values, many ties
    curve = M.cascade_curve(base_pred, comp_pred, y, conf)
    want = brute_force_curve(base_pred, comp_pred, y, conf)
    assert len(curve["deferral_rate"]) == len(want) == len(set(conf.tolist())) + 1
    for i, (d, a, g, t) in enumerate(want):
        assert curve["deferral_rate"][i] == pytest.approx(d, abs=1e-15)
        assert curve["accuracy"][i] == pytest.approx(a, abs=1e-15)
        assert curve["agreement"][i] == pytest.approx(g, abs=1e-15)
        assert curve["threshold"][i] == t
    assert curve["deferral_rate"][0] == 0.0 and curve["deferral_rate"][-1] == 1.0 and curve["agreement"][-1] == 1.0


def test_curve_accepts_probabilities_or_labels():
    rng = np.random.default_rng(4)
    base, comp = softmax_probs(rng, 500, 5), softmax_probs(rng, 500, 5)
    y, conf = rng.integers(0, 5, 500), rng.random(500)
    a = M.cascade_curve(base, comp, y, conf)
    b = M.cascade_curve(base.argmax(1), torch.from_numpy(comp.argmax(1)), y, torch.from_numpy(conf))
    for k in a:
        np.testing.assert_array_equal(a[k], b[k])
    # the curve at a threshold equals cascade() with that threshold's accept mask
    i = 137
    point = M.cascade(base, comp, y, conf >= a["threshold"][i])
    assert point["accuracy"] == pytest.approx(a["accuracy"][i], abs=1e-15)
    assert point["agreement"] == pytest.approx(a["agreement"][i], abs=1e-15)


def test_deferral_for_agreement_is_the_smallest_sufficient_deferral():
    rng = np.random.default_rng(5)
    n = 1000
    base_pred = rng.integers(0, 10, n)
    conf = rng.random(n)
    comp_pred = np.where(rng.random(n) < 0.1 * (1 - conf) * 2, (base_pred + 1) % 10, base_pred)
    y = base_pred.copy()
    for level in (0.95, 0.99, 0.999, 1.0):
        got = M.deferral_for_agreement(base_pred, comp_pred, y, conf, agreement=level)
        ok = [p for p in brute_force_curve(base_pred, comp_pred, y, conf) if p[2] >= level]
        assert got["deferral_rate"] == pytest.approx(min(p[0] for p in ok), abs=1e-15)
        assert got["agreement"] >= level
    with pytest.raises(ValueError, match="agreement=1.5"):
        M.deferral_for_agreement(base_pred, comp_pred, y, conf, agreement=1.5)


def test_bad_and_empty_inputs():
    with pytest.raises(ValueError, match="accept has length 2 but base_probs has length 3"):
        M.cascade(np.full((3, 2), 0.5), np.full((3, 2), 0.5), [0, 1, 0], [True, False])
    with pytest.raises(ValueError, match="comp has 2 rows but confidence has length 3"):
        M.cascade_curve([0, 1, 0], np.full((2, 2), 0.5), [0, 1, 0], [0.1, 0.2, 0.3])
    with pytest.raises(ValueError, match="confidence has NaN"):
        M.cascade_curve([0, 1], [0, 1], [0, 1], [0.1, float("nan")])
    with pytest.warns(M.UndefinedMetricWarning):
        out = M.cascade(np.zeros((0, 2)), np.zeros((0, 2)), np.zeros(0, int), np.zeros(0, bool))
    assert all(math.isnan(v) for v in out.values())
    assert all(v.size == 0 for v in M.cascade_curve([], [], [], []).values())
