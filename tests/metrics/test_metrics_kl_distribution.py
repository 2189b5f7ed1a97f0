"""kl_distribution (llama.cpp-style KL statistics) against an independent scipy computation."""
import math
import warnings

import numpy as np
import pytest
import torch
from scipy import stats
from scipy.special import rel_entr, softmax

from uqcompress import metrics as M


def _scipy_kl_rows(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Per-row KL(softmax(a) || softmax(b)) from scipy's softmax and rel_entr, in float64."""
    return rel_entr(softmax(a.astype(np.float64), axis=1), softmax(b.astype(np.float64), axis=1)).sum(axis=1)


@pytest.mark.parametrize("n,k,dtype", [(5000, 4, np.float64), (1001, 10, np.float32), (37, 2, np.float64)])
def test_kl_distribution_matches_scipy(n, k, dtype):
    rng = np.random.default_rng(n)
    a = (3 * rng.standard_normal((n, k))).astype(dtype)
    b = a + (0.5 * rng.standard_normal((n, k))).astype(dtype) * (rng.random((n, 1)) < 0.3)  # 70% rows equal
    ref = _scipy_kl_rows(a, b)
    d = M.kl_distribution(torch.from_numpy(a), b)
    assert list(d) == list(M.KL_DISTRIBUTION_KEYS)
    assert d["kl_mean"] == pytest.approx(ref.mean(), rel=1e-9, abs=1e-15)
    assert d["kl_mean"] == pytest.approx(M.kl_from_logits(a, b), rel=1e-12, abs=1e-15)
    assert d["kl_sem"] == pytest.approx(stats.sem(ref), rel=1e-7, abs=1e-15)
    assert d["kl_median"] == pytest.approx(np.median(ref), rel=1e-7, abs=1e-12)
    for key, q in (("kl_p90", 90), ("kl_p95", 95), ("kl_p99", 99), ("kl_p999", 99.9)):
        # scipy's scoreatpercentile interpolates between order statistics ('fraction'), as numpy's 'linear'
        assert d[key] == pytest.approx(stats.scoreatpercentile(ref, q), rel=1e-7, abs=1e-12), key
    assert d["kl_max"] == pytest.approx(ref.max(), rel=1e-9)
    assert d["kl_median"] <= d["kl_p90"] <= d["kl_p95"] <= d["kl_p99"] <= d["kl_p999"] <= d["kl_max"]


def test_kl_distribution_hand_computed():
    # per-sample KL: 0, 0, 0, KL([.5,.5] || [.9,.1]) = 0.5 ln(0.5/0.9) + 0.5 ln(0.5/0.1)
    kl4 = 0.5 * math.log(0.5 / 0.9) + 0.5 * math.log(0.5 / 0.1)
    d = M.kl_distribution([[0.0, 0.0]] * 4, [[0.0, 0.0]] * 3 + [[math.log(9.0), 0.0]])
    assert d["kl_mean"] == pytest.approx(kl4 / 4)
    assert d["kl_max"] == pytest.approx(kl4)
    assert d["kl_median"] == 0.0
    # linear interpolation: the p-th percentile of 4 sorted values sits at position p/100 * 3
    assert d["kl_p90"] == pytest.approx(kl4 * (0.9 * 3 - 2))
    assert d["kl_sem"] == pytest.approx(math.sqrt(((kl4 - kl4 / 4) ** 2 + 3 * (kl4 / 4) ** 2) / 3) / 2)


def test_kl_distribution_undefined_cases_are_nan_with_warning():
    with pytest.warns(M.UndefinedMetricWarning):
        d = M.kl_distribution(np.zeros((0, 3)), np.zeros((0, 3)))
    assert all(math.isnan(v) for v in d.values())
    with pytest.warns(M.UndefinedMetricWarning, match="1 sample"):
        d = M.kl_distribution([[0.0, 1.0]], [[1.0, 0.0]])
    assert math.isnan(d["kl_sem"]) and d["kl_mean"] == d["kl_max"] == d["kl_median"] > 0


def test_kl_distribution_validates_like_the_other_metrics():
    with pytest.raises(ValueError, match="comp_logits has shape"):
        M.kl_distribution(np.zeros((3, 2)), np.zeros((3, 4)))
    with pytest.raises(ValueError, match="base_logits has NaN at row 1"):
        M.kl_distribution([[0.0, 0.0], [np.nan, 0.0]], np.zeros((2, 2)))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        d = M.kl_distribution([[-1e4, 0.0]] * 2, [[0.0, -1e4]] * 2)  # padded options: large and finite
        assert math.isfinite(d["kl_max"]) and d["kl_max"] > 1e3
