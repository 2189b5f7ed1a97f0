"""selective / risk-coverage curve / AURC / E-AURC: hand computations, a brute-force reference, tie handling."""
import math
import warnings
from unittest import mock

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from metric_peers import pytorch_ood_aurc, torch_uncertainty_aurc

from uqcompress import metrics as M
from uqcompress.metrics import _kernels


def brute_force_aurc(conf, correct) -> float:
    """DESIGN.md definition, O(N^2): each sample contributes the risk of accepting everything at least as confident."""
    conf = np.asarray(conf, dtype=np.float64)
    wrong = ~np.asarray(correct, dtype=bool)
    return float(np.mean([wrong[conf >= c].mean() for c in conf]))


def test_selective_hand_computed():
    # conf  : 0.9  0.8  0.7  0.4  0.3  0.2
    # right : 1    0    1    0    0    1      accept = conf >= 0.5 -> first three
    # accepted: 3 (1 wrong); abstained: 3 (2 wrong); wrong in all: 3
    conf = [0.9, 0.8, 0.7, 0.4, 0.3, 0.2]
    correct = [1, 0, 1, 0, 0, 1]
    expected = {"coverage": 0.5, "selective_risk": 1 / 3, "saved_rate": 2 / 3, "error_catch_rate": 2 / 3}
    assert M.selective(conf, correct, [1, 1, 1, 0, 0, 0]) == pytest.approx(expected, abs=1e-15)
    assert M.selective(torch.tensor(conf), torch.tensor(correct, dtype=torch.bool), 0.5) == pytest.approx(expected)


@pytest.mark.parametrize(
    "correct, accept, nan_key",
    [
        ([1, 0, 1], [1, 1, 1], "saved_rate"),  # no abstentions
        ([1, 0, 1], [0, 0, 0], "selective_risk"),  # nothing accepted
        ([1, 1, 1], [1, 0, 1], "error_catch_rate"),  # all correct
    ],
)
def test_selective_undefined_is_nan_with_one_warning(correct, accept, nan_key):
    with warnings.catch_warnings(record=True) as rec:
        warnings.simplefilter("always")
        r = M.selective([0.9, 0.5, 0.1], correct, accept)
    assert math.isnan(r[nan_key])
    assert all(not math.isnan(v) for k, v in r.items() if k != nan_key)
    assert len(rec) == 1 and nan_key in str(rec[0].message)
    assert issubclass(rec[0].category, M.UndefinedMetricWarning)


def test_all_correct_and_no_abstention_is_not_a_silent_zero():
    with pytest.warns(M.UndefinedMetricWarning):
        r = M.selective([0.9, 0.8], [1, 1], [1, 1])
    assert r["coverage"] == 1.0 and r["selective_risk"] == 0.0
    assert math.isnan(r["saved_rate"]) and math.isnan(r["error_catch_rate"])


def test_aurc_hand_computed_no_ties():
    # sorted by confidence: wrong, right, right -> risks 1/1, 1/2, 1/3
    r = M.aurc([0.9, 0.8, 0.7], [0, 1, 1])
    assert r["aurc"] == pytest.approx((1 + 1 / 2 + 1 / 3) / 3, abs=1e-15)
    # E-AURC: r = 1/3, AURC* = 1/3 + (2/3) ln(2/3)
    assert r["eaurc"] == pytest.approx((1 + 1 / 2 + 1 / 3) / 3 - (1 / 3 + 2 / 3 * math.log(2 / 3)), abs=1e-15)


def test_aurc_hand_computed_with_ties():
    # confidence 0.9 | 0.8 0.8 | 0.1 ; correct 1 | 0 1 | 0
    # cut-offs: {0.9}: risk 0/1, weight 1; {0.9, 0.8, 0.8}: risk 1/3, weight 2; all: risk 2/4, weight 1
    conf, correct = [0.9, 0.8, 0.8, 0.1], [1, 0, 1, 0]
    assert M.aurc(conf, correct)["aurc"] == pytest.approx((0 + 2 * (1 / 3) + 1 / 2) / 4, abs=1e-15)
    cov, risk = M.risk_coverage_curve(conf, correct)
    np.testing.assert_allclose(cov, [0.25, 0.75, 1.0], atol=1e-15)
    np.testing.assert_allclose(risk, [0.0, 1 / 3, 0.5], atol=1e-15)


def test_aurc_is_the_plain_mean_not_torch_uncertainty_trapezoid():
    # torch-uncertainty: trapezoid over coverage 1/3..1 of (1, 1/2, 1/3), divided by (1 - 1/3)
    conf, correct = [0.9, 0.8, 0.7], [0, 1, 1]
    tu = ((1 + 1 / 2) / 2 + (1 / 2 + 1 / 3) / 2) / 3 / (2 / 3)
    assert torch_uncertainty_aurc(conf, correct) == pytest.approx(tu)
    assert M.aurc(conf, correct)["aurc"] == pytest.approx(0.6111111111111112)
    assert abs(M.aurc(conf, correct)["aurc"] - tu) > 0.02


def test_aurc_extremes():
    assert M.aurc([0.3, 0.2, 0.9], [1, 1, 1]) == {"aurc": 0.0, "eaurc": 0.0}  # r = 0: AURC* = 0
    assert M.aurc([0.3, 0.2, 0.9], [0, 0, 0]) == {"aurc": 1.0, "eaurc": 0.0}  # r = 1: AURC* = 1
    assert M.aurc([0.5] * 4, [1, 0, 1, 0])["aurc"] == 0.5  # one tie group: risk at full coverage
    assert M.aurc([0.7], [0])["aurc"] == 1.0


def test_aurc_ties_are_order_independent_unlike_peers():
    # fp16 confidences: many exact ties
    rng = np.random.default_rng(0)
    conf = torch.from_numpy(rng.beta(8, 1, 5000)).half().float().numpy()
    correct = rng.random(5000) < conf
    assert len(np.unique(conf)) < 1000  # 5000 samples on < 1000 distinct values
    ours, tu, po = set(), set(), set()
    for _ in range(5):
        perm = rng.permutation(5000)
        ours.add(M.aurc(conf[perm], correct[perm])["aurc"])
        cov_risk = M.risk_coverage_curve(conf[perm], correct[perm])
        tu.add(round(torch_uncertainty_aurc(conf[perm], correct[perm]), 12))
        po.add(round(pytorch_ood_aurc(conf[perm], correct[perm]), 12))
    assert len(ours) == 1
    assert len(tu) > 1 and len(po) > 1  # the peers' argsort order among ties changes their answer
    assert next(iter(ours)) == pytest.approx(brute_force_aurc(conf, correct), abs=1e-13)
    np.testing.assert_array_equal(cov_risk[0], M.risk_coverage_curve(conf, correct)[0])


def test_aurc_without_ties_equals_peers_plain_mean():
    rng = np.random.default_rng(1)
    conf = rng.random(3000)
    correct = rng.random(3000) < conf
    assert M.aurc(conf, correct)["aurc"] == pytest.approx(pytorch_ood_aurc(conf, correct), abs=1e-13)


@st.composite
def conf_correct(draw):
    n = draw(st.integers(1, 60))
    levels = draw(st.integers(1, 12))  # few levels -> many ties
    seed = draw(st.integers(0, 2**32 - 1))
    rng = np.random.default_rng(seed)
    conf = rng.integers(0, levels, n) / levels
    correct = rng.random(n) < draw(st.floats(0, 1))
    return conf, correct


@settings(max_examples=200, deadline=None)
@given(conf_correct(), st.sampled_from([1, 2, 5, 1 << 16]))
def test_aurc_matches_brute_force_and_eaurc_is_nonnegative(cc, block):
    conf, correct = cc
    with mock.patch.object(_kernels, "GROUP_BLOCK", block):  # tie groups straddling block edges
        r = M.aurc(conf, correct)
        cov, risk = M.risk_coverage_curve(conf, correct)
    assert r["aurc"] == pytest.approx(brute_force_aurc(conf, correct), abs=1e-14)
    assert r["eaurc"] >= 0.0
    assert 0.0 <= r["aurc"] <= 1.0
    assert cov[-1] == 1.0 and risk[-1] == pytest.approx(1 - correct.mean(), abs=1e-15)
    assert np.all(np.diff(cov) > 0)
    # AURC = risk averaged with each cut-off weighted by its tie group's share of the samples
    assert r["aurc"] == pytest.approx(float(np.diff(cov, prepend=0.0) @ risk), abs=1e-14)


@settings(max_examples=100, deadline=None)
@given(conf_correct(), st.floats(0, 1))
def test_selective_matches_direct_counts(cc, t):
    conf, correct = cc
    r = M.selective(conf, correct, t) if (conf >= t).any() and (conf < t).any() and (~correct).any() else None
    if r is None:
        return
    acc = conf >= t
    assert r["coverage"] == acc.mean()
    assert r["selective_risk"] == pytest.approx((~correct[acc]).mean(), abs=1e-15)
    assert r["saved_rate"] == pytest.approx((~correct[~acc]).mean(), abs=1e-15)
    assert r["error_catch_rate"] == pytest.approx((~correct & ~acc).sum() / (~correct).sum(), abs=1e-15)
