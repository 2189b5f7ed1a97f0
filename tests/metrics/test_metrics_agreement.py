"""flips / KL / JS against hand computations, scipy and torch, plus hypothesis invariants."""
import math

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from metric_data import softmax_probs, tied_probs
from scipy.spatial.distance import jensenshannon
from scipy.special import log_softmax, rel_entr

from uqcompress import metrics as M


def test_flips_hand_computed():
    # row: base pred / comp pred / label -> category
    # 0: 0 / 1 / 0 -> C->I        1: 1 / 1 / 1 -> agree, correct
    # 2: 2 / 1 / 1 -> I->C        3: 0 / 2 / 1 -> wrong -> other wrong (an all_flip, not a flip)
    # 4: 2 / 2 / 0 -> agree, wrong
    base = np.array([[0.6, 0.3, 0.1], [0.1, 0.8, 0.1], [0.1, 0.3, 0.6], [0.5, 0.2, 0.3], [0.2, 0.2, 0.6]])
    comp = np.array([[0.3, 0.6, 0.1], [0.2, 0.7, 0.1], [0.1, 0.6, 0.3], [0.2, 0.3, 0.5], [0.1, 0.1, 0.8]])
    y = np.array([0, 1, 1, 1, 0])
    assert M.flips(base, comp, y) == {"flips": 0.4, "c2i": 0.2, "i2c": 0.2, "all_flips": 0.6, "agreement": 0.4}


def test_flips_match_numpy_on_random_and_tied_inputs():
    rng = np.random.default_rng(0)
    for base, comp in [(softmax_probs(rng, 4000, 10), softmax_probs(rng, 4000, 10)),
                       (tied_probs(rng, 4000, 3), tied_probs(rng, 4000, 3))]:
        y = rng.integers(0, base.shape[1], 4000)
        b, c = base.argmax(1), comp.argmax(1)
        r = M.flips(torch.from_numpy(base).half(), comp.astype(np.float32), y)
        b16 = torch.from_numpy(base).half().float().numpy().argmax(1)
        c32 = comp.astype(np.float32).argmax(1)
        assert r["c2i"] == np.mean((b16 == y) & (c32 != y))
        assert r["i2c"] == np.mean((b16 != y) & (c32 == y))
        assert r["all_flips"] == np.mean(b16 != c32)
        r64 = M.flips(base, comp, y)
        assert r64["flips"] == np.mean((b == y) != (c == y))


@st.composite
def prob_pairs(draw):
    n = draw(st.integers(1, 30))
    k = draw(st.integers(2, 6))
    seed = draw(st.integers(0, 2**32 - 1))
    rng = np.random.default_rng(seed)
    make = draw(st.sampled_from([tied_probs, softmax_probs]))
    p, q = make(rng, n, k), make(rng, n, k)
    same = draw(st.floats(0, 1))
    equal_rows = rng.random(n) < same
    q[equal_rows] = p[equal_rows]  # some rows identical: KL terms exactly 0
    y = rng.integers(0, k, n)
    return p, q, y


@settings(max_examples=100, deadline=None)
@given(prob_pairs())
def test_flip_invariants(pqy):
    p, q, y = pqy
    r = M.flips(p, q, y)
    assert r["flips"] == pytest.approx(r["c2i"] + r["i2c"], abs=1e-15)
    assert r["all_flips"] >= r["flips"]
    assert r["agreement"] == pytest.approx(1.0 - r["all_flips"], abs=1e-15)
    assert all(0.0 <= v <= 1.0 for v in r.values())
    assert M.flips(p, p, y)["all_flips"] == 0.0


@settings(max_examples=100, deadline=None)
@given(prob_pairs())
def test_kl_invariants_and_scipy_reference(pqy):
    p, q, _ = pqy
    kl = M.kl_divergence(p, q)
    assert kl >= 0.0
    assert M.kl_divergence(p, p) == 0.0
    rows_differ = np.abs(p - q).max(axis=1) > 1e-9
    if rows_differ.any():
        assert kl > 0.0
    if ((q > 0) | (p == 0)).all():  # KL finite: scipy's rel_entr is the reference
        ref = rel_entr(p, q).sum(axis=1).mean()
        assert kl == pytest.approx(ref, rel=1e-9, abs=1e-15)
    js = M.js_divergence(p, q)
    assert 0.0 <= js <= math.log(2) + 1e-15
    assert js == pytest.approx(M.js_divergence(q, p), rel=1e-12, abs=1e-15)
    assert js == pytest.approx(np.mean(jensenshannon(p, q, axis=1) ** 2), rel=1e-9, abs=1e-14)


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_kl_matches_scipy_and_torch_on_random_rows(dtype):
    rng = np.random.default_rng(5)
    p = softmax_probs(rng, 3000, 10, dtype=dtype)
    q = softmax_probs(rng, 3000, 10, dtype=dtype)
    p64, q64 = p.astype(np.float64), q.astype(np.float64)
    # float32 rows sum to 1 +- 1e-7: we renormalise, so compare with the renormalised float64 rows
    p64 /= p64.sum(1, keepdims=True)
    q64 /= q64.sum(1, keepdims=True)
    ref = rel_entr(p64, q64).sum(axis=1).mean()
    assert M.kl_divergence(p, q) == pytest.approx(ref, rel=1e-12)
    torch_ref = torch.nn.functional.kl_div(torch.from_numpy(np.log(q64)), torch.from_numpy(p64), reduction="batchmean")
    assert M.kl_divergence(p, q) == pytest.approx(float(torch_ref), rel=1e-10)


def test_kl_zero_handling_hand_computed():
    # p_b = 0 terms contribute 0; p_c = 0 where p_b > 0 is clamped at the smallest normal float64 (finite, large)
    p = np.array([[0.5, 0.5, 0.0]])
    q = np.array([[0.25, 0.75, 0.0]])
    assert M.kl_divergence(p, q) == pytest.approx(0.5 * math.log(2) + 0.5 * math.log(0.5 / 0.75), rel=1e-14)
    p2, q2 = np.array([[0.5, 0.5]]), np.array([[1.0, 0.0]])
    tiny = np.finfo(np.float64).tiny
    assert M.kl_divergence(p2, q2) == pytest.approx(0.5 * math.log(0.5) + 0.5 * (math.log(0.5) - math.log(tiny)))
    assert math.isinf(rel_entr(p2, q2).sum())  # scipy's answer is inf; ours stays finite by the documented clamp


def test_kl_renormalises_rows_within_tolerance():
    # fp16-style rows summing to 1 +- 5e-4 must not give a negative KL
    p = np.array([[0.5, 0.5]])
    q = np.array([[0.5005, 0.5005]])  # the same distribution, scaled by 1.001
    assert rel_entr(p, q).sum() < -9e-4  # the raw formula goes negative
    assert M.kl_divergence(p, q) == pytest.approx(0.0, abs=1e-15)
    q2 = np.array([[0.5005, 0.5]])
    ref = rel_entr(p, q2 / q2.sum()).sum()
    assert M.kl_divergence(p, q2) == pytest.approx(ref, rel=1e-9)


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32, torch.float16])
def test_kl_and_js_from_logits_match_scipy(dtype):
    rng = np.random.default_rng(9)
    a = torch.from_numpy(3 * rng.standard_normal((2000, 7))).to(dtype)
    b = torch.from_numpy(3 * rng.standard_normal((2000, 7))).to(dtype)
    la, lb = log_softmax(a.double().numpy(), axis=1), log_softmax(b.double().numpy(), axis=1)
    pa, pb = np.exp(la), np.exp(lb)
    assert M.kl_from_logits(a, b) == pytest.approx(rel_entr(pa, pb).sum(1).mean(), rel=1e-10)
    assert M.js_from_logits(a, b) == pytest.approx(np.mean(jensenshannon(pa, pb, axis=1) ** 2), rel=1e-10)
    # log-probabilities are logits too, and agree with the probability versions
    assert M.kl_from_logits(la, lb) == pytest.approx(M.kl_divergence(pa, pb), rel=1e-10)
    assert M.js_from_logits(la, lb) == pytest.approx(M.js_divergence(pa, pb), rel=1e-10)


def test_kl_from_logits_has_no_log_zero_for_extreme_logits():
    a = np.array([[1000.0, -1000.0, 0.0]])
    b = np.array([[-1000.0, 1000.0, 0.0]])
    kl = M.kl_from_logits(a, b)
    assert math.isfinite(kl) and kl == pytest.approx(2000.0, rel=1e-12)
    assert M.js_from_logits(a, b) == pytest.approx(math.log(2), rel=1e-12)
    assert M.kl_from_logits(a, a) == 0.0


def test_js_hand_computed():
    # p = [1, 0], q = [0.5, 0.5]: m = [0.75, 0.25]
    # JS = 0.5 * ln(1 / 0.75) + 0.5 * (0.5 ln(0.5 / 0.75) + 0.5 ln(0.5 / 0.25))
    expected = 0.5 * math.log(4 / 3) + 0.5 * (0.5 * math.log(2 / 3) + 0.5 * math.log(2))
    assert M.js_divergence([[1.0, 0.0]], [[0.5, 0.5]]) == pytest.approx(expected, rel=1e-14)
