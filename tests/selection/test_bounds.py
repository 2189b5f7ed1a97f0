"""Binomial bounds and SGR's search against independent references: scipy's exact binomial test, root-finding on
the binomial CDF, and a plain-Python transcription of Geifman & El-Yaniv's Algorithm 1."""
import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy.optimize import brentq
from scipy.stats import binom, binomtest

from uqcompress.selection.bounds import binomial_upper_bound, cuts, sgr, sgr_search, sgr_tests


def cp_upper_by_root(e: int, n: int, delta: float) -> float:
    """The b with P(Binomial(n, b) <= e) = delta, found by bisection on scipy's binomial CDF."""
    if e >= n:
        return 1.0
    return brentq(lambda b: binom.cdf(e, n, b) - delta, 0.0, 1.0, xtol=1e-15, rtol=1e-14)


@pytest.mark.parametrize("e,n,delta", [(0, 1, 0.1), (0, 100, 0.05), (3, 200, 0.1), (17, 1000, 0.01),
                                       (50, 60, 0.2), (999, 1000, 0.001), (1, 2, 0.5)])
def test_clopper_pearson_upper_bound_matches_scipy(e, n, delta):
    got = float(binomial_upper_bound(e, n, delta))
    assert got == pytest.approx(cp_upper_by_root(e, n, delta), rel=1e-9, abs=1e-12)
    ci = binomtest(e, n, alternative="less").proportion_ci(confidence_level=1 - delta, method="exact")
    assert got == pytest.approx(ci.high, rel=1e-9, abs=1e-12)
    assert binom.cdf(e, n, got) == pytest.approx(delta, rel=1e-8)


def test_bound_edges_and_broadcasting():
    assert binomial_upper_bound(5, 5, 0.1) == 1.0 and binomial_upper_bound(0, 0, 0.1) == 1.0
    b = binomial_upper_bound(np.array([0, 1, 2]), 10, np.array([[0.1], [0.01]]))
    assert b.shape == (2, 3)
    assert (np.diff(b, axis=1) > 0).all() and (b[1] > b[0]).all()   # more errors / more confidence: wider
    assert binomial_upper_bound(0, 100, 0.1) == pytest.approx(1 - 0.1 ** (1 / 100), rel=1e-12)  # closed form
    with pytest.raises(ValueError, match="0 <= errors <= n"):
        binomial_upper_bound(3, 2, 0.1)
    with pytest.raises(ValueError, match="0 < delta < 1"):
        binomial_upper_bound(0, 2, 0.0)


def test_cuts_group_ties():
    c = cuts(np.array([0.2, 0.9, 0.5, 0.9, 0.5, 0.1]), np.array([0, 1, 0, 0, 1, 1], bool))
    assert c.threshold.tolist() == [0.9, 0.5, 0.2, 0.1]
    assert c.accepted.tolist() == [2, 4, 5, 6]
    assert c.losses.tolist() == [1, 2, 2, 3]
    with pytest.raises(ValueError, match="empty calibration split"):
        cuts(np.zeros(0), np.zeros(0, bool))
    with pytest.raises(ValueError, match="NaN/inf at index 1"):
        cuts(np.array([0.1, np.nan]), np.zeros(2, bool))


def test_number_of_tests_is_ceil_log2():
    g = np.arange(1, 5000)
    assert (sgr_tests(g) == np.ceil(np.log2(g + 1)).astype(int)).all()
    assert int(sgr_tests(1000)) == 10 == math.ceil(math.log2(1000))   # the paper's k for m = 1000 distinct values


def reference_sgr(conf: list[float], loss: list[bool], target: float, delta: float):
    """Geifman & El-Yaniv 2017, Algorithm 1, over the distinct confidence values, in plain Python."""
    values = sorted(set(conf), reverse=True)
    k = math.ceil(math.log2(len(values) + 1))
    lo, hi, best = 0, len(values) + 1, (math.inf, math.nan, 0)
    while hi - lo > 1:
        mid = (lo + hi) // 2
        t = values[mid - 1]
        answered = [bad for c, bad in zip(conf, loss) if c >= t]
        b = cp_upper_by_root(sum(answered), len(answered), delta / k)
        if b <= target:
            lo, best = mid, (t, b, len(answered))
        else:
            hi = mid
    return best


@settings(max_examples=80, deadline=None)
@given(st.lists(st.tuples(st.integers(0, 40), st.booleans()), min_size=1, max_size=300),
       st.sampled_from([0.05, 0.1, 0.2, 0.4]), st.sampled_from([0.05, 0.1, 0.3]), st.floats(0.0, 0.6))
def test_sgr_matches_the_papers_algorithm(rows, target, delta, skew):
    conf = [r[0] / 40 for r in rows]                                     # many ties on purpose
    loss = [r[1] and (r[0] / 40 < 1 - skew) for r in rows]               # fewer losses among the confident
    fit = sgr(np.array(conf), np.array(loss), target, delta)
    t, b, n_acc = reference_sgr(conf, loss, target, delta)
    assert fit.threshold == t and fit.accepted == n_acc
    if n_acc:
        assert fit.bound == pytest.approx(b, rel=1e-8, abs=1e-12) and fit.bound <= target
        assert fit.accepted == sum(c >= t for c in conf)                 # ties accepted together
    else:
        assert not fit.valid and math.isnan(fit.bound)


def test_batched_search_equals_one_draw_at_a_time():
    rng = np.random.default_rng(3)
    rows = []
    for _ in range(25):
        n = int(rng.integers(1, 400))
        conf = np.round(rng.random(n), 2)
        loss = rng.random(n) < 0.15 * (1 - conf) * 2
        rows.append(cuts(conf, loss))
    g = max(len(c.threshold) for c in rows)
    acc = np.zeros((len(rows), g), np.int64)
    los = np.zeros((len(rows), g), np.int64)
    for i, c in enumerate(rows):
        acc[i, : len(c.threshold)] = c.accepted
        los[i, : len(c.threshold)] = c.losses
    n_cuts = np.array([len(c.threshold) for c in rows])
    chosen, bound, tests = sgr_search(acc, los, n_cuts, 0.1, 0.1)
    for i, c in enumerate(rows):
        one, one_bound, one_tests = sgr_search(c.accepted, c.losses, np.int64(len(c.threshold)), 0.1, 0.1)
        assert chosen[i] == one and tests[i] == one_tests
        assert (np.isnan(bound[i]) and np.isnan(one_bound)) or bound[i] == one_bound
    assert (chosen > 0).any() and (chosen == 0).any()   # both paths exercised


def test_unreachable_target_certifies_nothing():
    # 100 samples, no errors: the best possible bound at delta / k is 1 - (delta/k)^(1/100) > 0.02
    fit = sgr(np.linspace(0, 1, 100), np.zeros(100, bool), target=0.02, delta=0.1)
    assert not fit.valid and fit.threshold == math.inf and fit.accepted == 0 and fit.coverage == 0.0
    assert 1 - (0.1 / fit.tests) ** (1 / 100) > 0.02
