"""bootstrap_ci: the vectorised paths equal the generic one-call-per-replicate path on the same resamples."""
import math

import numpy as np
import pytest
import torch
from metric_data import softmax_probs

from uqcompress import metrics as M


@pytest.fixture(scope="module")
def data():
    rng = np.random.default_rng(0)
    n, k = 3000, 5
    base = softmax_probs(rng, n, k)
    comp = softmax_probs(rng, n, k)
    y = base.argmax(1)
    noisy = rng.random(n) < 0.3
    y[noisy] = rng.integers(0, k, int(noisy.sum()))  # ~76% accuracy
    conf = base.max(1)
    correct = base.argmax(1) == y
    accept = conf >= np.quantile(conf, 0.3)
    return base, comp, y, conf, correct, accept, rng.beta(2, 1, 1500)


def generic(fn):
    """The same metric hidden behind a wrapper, so bootstrap_ci takes its generic loop path."""
    return lambda *a, **k: fn(*a, **k)


def test_fast_paths_equal_the_generic_path(data):
    base, comp, y, conf, correct, accept, cood = data
    cases = [
        (M.accuracy, (base, y), {}),
        (M.flips, (base, comp, y), {}),
        (M.selective, (conf, correct, accept), {}),
        (M.selective, (conf, correct), {"accept": 0.6}),
        (M.auroc, (conf, cood), {"paired": False}),
    ]
    for fn, arrays, kw in cases:
        arrays = tuple(a[:1000] for a in arrays)
        fast = M.bootstrap_ci(fn, *arrays, n_boot=100, seed=3, **kw)
        slow = M.bootstrap_ci(generic(fn), *arrays, n_boot=100, seed=3, **kw)
        if isinstance(fast, dict):
            assert fast.keys() == slow.keys()
            fast, slow = [fast[k] for k in sorted(fast)], [slow[k] for k in sorted(slow)]
        np.testing.assert_allclose(fast, slow, rtol=0, atol=1e-12, err_msg=fn.__name__)


def test_interval_is_percentile_of_resamples_and_seeded(data):
    base, _, y, *_ = data
    n = len(y)
    rng = np.random.default_rng(11)
    idx = rng.integers(0, n, size=(500, n))
    correct = base.argmax(1) == y
    reps = correct[idx].mean(axis=1)
    expected = tuple(np.percentile(reps, [5.0, 95.0]))
    assert M.bootstrap_ci(M.accuracy, base, y, n_boot=500, alpha=0.1, seed=11) == pytest.approx(expected, abs=1e-12)
    assert M.bootstrap_ci(M.accuracy, base, y, n_boot=500, seed=11) == M.bootstrap_ci(
        M.accuracy, torch.from_numpy(base), torch.from_numpy(y), n_boot=500, seed=11)
    assert M.bootstrap_ci(M.accuracy, base, y, n_boot=500, seed=12) != M.bootstrap_ci(
        M.accuracy, base, y, n_boot=500, seed=11)


def test_dict_metric_gives_interval_per_key_containing_the_estimate(data):
    base, comp, y, *_ = data
    ci = M.bootstrap_ci(M.flips, base, comp, y, n_boot=400)
    point = M.flips(base, comp, y)
    assert set(ci) == set(point)
    for k, (lo, hi) in ci.items():
        assert lo <= point[k] <= hi


def test_ood_is_resampled_per_split_and_auroc_interval_is_sane(data):
    *_, conf, _, _, cood = data
    lo, hi = M.bootstrap_ci(M.auroc, conf, cood, n_boot=300)
    assert lo < M.auroc(conf, cood) < hi and hi - lo < 0.1
    ci = M.bootstrap_ci(M.ood, conf, cood, n_boot=50)
    assert ci["auroc"] == pytest.approx(M.bootstrap_ci(M.auroc, conf, cood, n_boot=50), abs=1e-12)


def test_any_function_of_arrays_and_kwargs(data):
    base, _, y, *_ = data
    base, y = base[:1000], y[:1000]
    lo, hi = M.bootstrap_ci(M.calibration, base, y, n_boot=30, n_bins=10)["ece"]
    assert lo <= M.calibration(base, y, n_bins=10)["ece"] <= hi


def test_undefined_resamples_are_left_out_with_a_warning():
    # 1 error in 40: many resamples have no error at all -> error_catch_rate NaN there
    conf = np.linspace(0, 1, 40)
    correct = np.ones(40, bool)
    correct[0] = False
    accept = conf > 0.5
    with pytest.warns(M.UndefinedMetricWarning, match="NaN in some resamples"):
        ci = M.bootstrap_ci(M.selective, conf, correct, accept, n_boot=200)
    assert ci["error_catch_rate"] == (1.0, 1.0)
    with pytest.warns(M.UndefinedMetricWarning):
        ci = M.bootstrap_ci(M.selective, conf, correct, np.ones(40, bool), n_boot=20)
    assert all(math.isnan(v) for v in ci["saved_rate"])


def test_bad_arguments():
    p, y = np.full((4, 2), 0.5), np.array([0, 1, 0, 1])
    with pytest.raises(ValueError, match="n_boot must be a positive integer; got 0"):
        M.bootstrap_ci(M.accuracy, p, y, n_boot=0)
    with pytest.raises(ValueError, match=r"alpha must be in \(0, 1\); got 1.5"):
        M.bootstrap_ci(M.accuracy, p, y, alpha=1.5)
    with pytest.raises(ValueError, match="paired resampling needs arrays of equal length"):
        M.bootstrap_ci(lambda a, b: float(np.mean(a) - np.mean(b)), [1.0, 2.0], [1.0, 2.0, 3.0])
    with pytest.raises(ValueError, match="keyword accept is an array"):
        M.bootstrap_ci(M.selective, [0.1, 0.2], [1, 0], accept=np.array([1, 0]))
    with pytest.raises(ValueError, match="labels has value 7 outside"):
        M.bootstrap_ci(M.accuracy, p, [0, 1, 7, 0])
