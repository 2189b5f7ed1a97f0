"""Headline intervals: exactly bootstrap_ci on the right arrays, a 95% percentile bootstrap (checked against scipy),
paired across metrics, and the same from predictions.csv as from the probabilities."""
import numpy as np
import pandas as pd
import pytest
from scipy import stats

from uqcompress import metrics as M
from uqcompress.report.intervals import HEADLINE, headline_intervals, intervals_from_predictions


@pytest.fixture(scope="module")
def run():
    rng = np.random.default_rng(3)
    n, k = 1500, 4
    base = rng.dirichlet(np.ones(k) * 0.4, n)
    comp = np.where(rng.random((n, 1)) < 0.1, rng.dirichlet(np.ones(k), n), base)
    y = np.where(rng.random(n) < 0.8, base.argmax(1), rng.integers(0, k, n))
    conf = comp.max(1)
    accept = conf >= np.quantile(conf, 0.15)
    ood = {"baseline": (base.max(1), rng.beta(2, 2, 700)), "compressed": (conf, rng.beta(2, 2, 700))}
    return y, base, comp, conf, accept, ood


def test_every_interval_is_bootstrap_ci_of_its_metric(run):
    y, base, comp, conf, accept, ood = run
    ci = headline_intervals(y, base, comp, conf, accept, ood, n_boot=400, seed=5)
    kw = dict(n_boot=400, seed=5)
    correct = comp.argmax(1) == y
    want = {"baseline.accuracy": M.bootstrap_ci(M.accuracy, base, y, **kw),
            "compressed.accuracy": M.bootstrap_ci(M.accuracy, comp, y, **kw),
            "baseline.ood_auroc": M.bootstrap_ci(M.auroc, *ood["baseline"], **kw),
            "compressed.ood_auroc": M.bootstrap_ci(M.auroc, *ood["compressed"], **kw)}
    flips = M.bootstrap_ci(M.flips, base, comp, y, **kw)
    sel = M.bootstrap_ci(M.selective, conf, correct, accept, **kw)
    want.update({f"compressed.{k}": flips[k] for k in ("flips", "c2i", "i2c")})
    want.update({f"compressed.{k}": sel[k] for k in ("coverage", "selective_risk", "saved_rate")})
    assert set(want) == set(HEADLINE)
    for key, (lo, hi) in want.items():
        assert (ci[f"{key}_ci_low"], ci[f"{key}_ci_high"]) == (lo, hi), key
    assert ci["ci.level"] == 0.95 and ci["ci.n_boot"] == 400 and ci["ci.seed"] == 5


def test_point_values_lie_inside_and_scipy_percentile_bootstrap_agrees(run):
    y, base, comp, conf, accept, ood = run
    ci = headline_intervals(y, base, comp, conf, accept, ood, n_boot=2000, seed=0)
    acc = (comp.argmax(1) == y).astype(float)
    assert ci["compressed.accuracy_ci_low"] < acc.mean() < ci["compressed.accuracy_ci_high"]
    ref = stats.bootstrap((acc,), np.mean, n_resamples=2000, confidence_level=0.95, method="percentile",
                          random_state=1).confidence_interval
    # another random stream: the two percentile intervals agree to within the resampling noise
    assert ci["compressed.accuracy_ci_low"] == pytest.approx(ref.low, abs=0.006)
    assert ci["compressed.accuracy_ci_high"] == pytest.approx(ref.high, abs=0.006)
    flip = ((base.argmax(1) == y) != (comp.argmax(1) == y)).astype(float)
    ref = stats.bootstrap((flip,), np.mean, n_resamples=2000, method="percentile", random_state=1).confidence_interval
    assert ci["compressed.flips_ci_low"] == pytest.approx(ref.low, abs=0.005)
    assert ci["compressed.flips_ci_high"] == pytest.approx(ref.high, abs=0.005)


def test_from_predictions_equals_from_probabilities(run):
    y, base, comp, conf, accept, ood = run
    n_ood = len(ood["compressed"][1])
    pred = pd.concat([
        pd.DataFrame({"split": "test", "label": y, "baseline_pred": base.argmax(1), "compressed_pred": comp.argmax(1),
                      "baseline_confidence": ood["baseline"][0], "compressed_confidence": conf,
                      "compressed_accepted": accept}),
        pd.DataFrame({"split": "ood", "label": -1, "baseline_pred": 0, "compressed_pred": 0,
                      "baseline_confidence": ood["baseline"][1], "compressed_confidence": ood["compressed"][1],
                      "compressed_accepted": np.ones(n_ood, bool)})], ignore_index=True)
    assert intervals_from_predictions(pred, n_boot=300, seed=2) == headline_intervals(
        y, base, comp, conf, accept, ood, n_boot=300, seed=2)


def test_undefined_interval_is_nan_without_warnings(run, recwarn):
    y, base, comp, conf, _, _ = run
    ci = headline_intervals(y, base, comp, conf, np.ones(len(y), bool), n_boot=100)  # nothing abstained
    assert np.isnan(ci["compressed.saved_rate_ci_low"]) and ci["compressed.coverage_ci_low"] == 1.0
    assert "compressed.ood_auroc_ci_low" not in ci
    assert not [w for w in recwarn if issubclass(w.category, M.UndefinedMetricWarning)]
