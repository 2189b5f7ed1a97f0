"""accuracy / ECE / NLL / Brier against netcal, torchmetrics, scikit-learn and hand computations."""
import math

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from metric_data import labels_with_all_classes, softmax_probs, tied_probs
from netcal.metrics import ECE
from sklearn.metrics import brier_score_loss, log_loss

from uqcompress import metrics as M


def netcal_ece(p: np.ndarray, y: np.ndarray, n_bins: int = 15) -> float:
    # netcal treats labels with <= 2 distinct values as a *binary* problem (confidence = p[:, 1], not the top label),
    # so it is only a valid top-label reference with >= 3 classes present.
    assert len(np.unique(y)) >= 3, "netcal needs >= 3 distinct labels to compute the top-label ECE"
    return float(ECE(bins=n_bins).measure(p.astype(np.float64), y))


@pytest.mark.parametrize("seed", range(4))
@pytest.mark.parametrize("k", [3, 10])
def test_ece_matches_netcal(seed, k):
    rng = np.random.default_rng(seed)
    p = softmax_probs(rng, 3000, k, scale=1.0 + seed)
    y = labels_with_all_classes(rng, 3000, k)
    assert M.ece(p, y) == pytest.approx(netcal_ece(p, y), abs=1e-12)
    assert M.ece(p, y, n_bins=7) == pytest.approx(netcal_ece(p, y, 7), abs=1e-12)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_ece_matches_torchmetrics_away_from_confidence_one(tmf, dtype):
    rng = np.random.default_rng(7)
    p = softmax_probs(rng, 5000, 5)
    y = rng.integers(0, 5, 5000)
    pt = torch.from_numpy(p).to(dtype)
    ref = float(tmf.multiclass_calibration_error(pt, torch.from_numpy(y), 5, n_bins=15, norm="l1"))
    assert M.ece(pt, y) == pytest.approx(ref, abs=1e-6)  # torchmetrics sums in float32


def test_confidence_one_falls_in_last_bin_hand_computed():
    # 10 samples at confidence 1.0 (9 correct) and 10 at 0.95 (all correct), 20 in all.
    # Last bin [14/15, 1] holds all 20: |sum conf - sum correct| / N = |(10 + 9.5) - 19| / 20 = 0.025.
    # torchmetrics puts 1.0 into a 16th bin: (|10 - 9| + |9.5 - 10|) / 20 = 0.075.
    p = np.array([[1.0, 0.0, 0.0]] * 10 + [[0.95, 0.05, 0.0]] * 10)
    y = np.array([0] * 9 + [1] + [0] * 10)
    assert M.ece(p, y) == pytest.approx(0.025, abs=1e-15)
    assert M.calibration(p, y)["ece"] == pytest.approx(0.025, abs=1e-15)


def test_ece_accumulates_in_float64_at_one_million_float32_samples():
    # torchmetrics scatter-adds float32 confidences per bin and drifts by ~1e-6..1e-4 at this size.
    rng = np.random.default_rng(3)
    n, k = 1_000_000, 3
    z = torch.from_numpy((1.5 * rng.standard_normal((n, k))).astype(np.float32))
    y = rng.integers(0, k, n)
    p = torch.softmax(z, dim=1)
    pn = p.numpy()
    conf = pn.max(axis=1).astype(np.float64)
    ok = pn.argmax(axis=1) == y
    b = np.clip(np.searchsorted(np.linspace(0, 1, 16), conf, side="right") - 1, 0, 14)
    exact = sum(abs(math.fsum(conf[b == i]) - int(ok[b == i].sum())) for i in range(15)) / n
    assert M.ece(p, y) == pytest.approx(exact, abs=1e-13)
    assert M.ece(p, y) == pytest.approx(M.ece(p.double(), y), abs=1e-13)


def test_peer_torchmetrics_ece_pitfalls_still_exist(tmf):
    """Documents why torchmetrics is not our ECE: its 16th bin for confidence 1.0 and its float32 sums."""
    p = torch.tensor([[1.0, 0.0, 0.0]] * 10 + [[0.95, 0.05, 0.0]] * 10, dtype=torch.float64)
    y = torch.tensor([0] * 9 + [1] + [0] * 10)
    assert float(tmf.multiclass_calibration_error(p, y, 3, n_bins=15)) == pytest.approx(0.075, abs=1e-6)


@pytest.mark.parametrize("seed", range(3))
def test_nll_and_brier_match_sklearn(seed):
    rng = np.random.default_rng(seed)
    k = 4 + seed
    p = softmax_probs(rng, 2000, k)
    y = labels_with_all_classes(rng, 2000, k)
    r = M.calibration(p, y)
    assert r["nll"] == pytest.approx(log_loss(y, p, labels=range(k)), rel=1e-12)
    assert r["brier"] == pytest.approx(brier_score_loss(y, p, labels=range(k), scale_by_half=False), rel=1e-12)
    nll_torch = torch.nn.functional.nll_loss(torch.from_numpy(np.log(p)), torch.from_numpy(y))
    assert r["nll"] == pytest.approx(float(nll_torch), rel=1e-12)


def test_calibration_hand_computed_and_zero_probability_clamp():
    p = np.array([[0.85, 0.15, 0.0], [0.3, 0.7, 0.0], [0.0, 0.0, 1.0]])
    y = np.array([0, 0, 0])
    r = M.calibration(p, y)
    # ECE: bins hold {0.85 correct}, {0.7 wrong}, {1.0 wrong}: (0.15 + 0.7 + 1.0) / 3
    assert r["ece"] == pytest.approx((0.15 + 0.7 + 1.0) / 3, abs=1e-15)
    # NLL: p_y = 0 in row 3 is clamped at the smallest normal float64 -> -ln(2.2e-308) = 708.40
    tiny = np.finfo(np.float64).tiny
    assert r["nll"] == pytest.approx(-(math.log(0.85) + math.log(0.3) + math.log(tiny)) / 3, rel=1e-15)
    # Brier: (0.15^2 + 0.15^2) + (0.7^2 + 0.7^2) + (1 + 1) over 3
    assert r["brier"] == pytest.approx((2 * 0.15**2 + 2 * 0.7**2 + 2.0) / 3, rel=1e-14)


def test_accuracy_matches_sklearn_and_uses_first_argmax_on_ties():
    rng = np.random.default_rng(1)
    p = tied_probs(rng, 5000, 4)
    y = rng.integers(0, 4, 5000)
    assert M.accuracy(p, y) == pytest.approx(float(np.mean(p.argmax(1) == y)), abs=0)
    assert M.accuracy(torch.from_numpy(p).float(), y) == M.accuracy(p, y)


@settings(max_examples=60, deadline=None)
@given(st.integers(0, 2**32 - 1), st.integers(1, 60), st.integers(3, 6))
def test_ece_on_tied_rows_matches_netcal(seed, n, k):
    rng = np.random.default_rng(seed)
    p = tied_probs(rng, n + k, k)
    y = labels_with_all_classes(rng, n + k, k)
    # netcal clips confidence 1.0 to 1 - eps, inside the last bin like ours
    assert M.ece(p, y) == pytest.approx(netcal_ece(p, y), abs=1e-12)
    r = M.calibration(p, y)
    assert 0.0 <= r["ece"] <= 1.0 and 0.0 <= r["brier"] <= 2.0 and r["nll"] >= 0.0


def test_netcal_is_no_top_label_reference_with_two_label_values():
    """Why netcal comparisons use >= 3 classes: with <= 2 distinct labels it scores p[:, 1], not the top label."""
    # top conf 0.85 for both rows (one right, one wrong): one bin, |(0.85 + 0.85) - 1| / 2 = 0.35
    p = np.array([[0.85, 0.15], [0.15, 0.85]])
    y = np.array([0, 0])
    assert M.ece(p, y) == pytest.approx(0.35, abs=1e-15)
    # netcal bins p[:, 1] = 0.15 and 0.85 against y as "matched": (0.15 + 0.85) / 2 = 0.5
    assert float(ECE(bins=15).measure(p, y)) == pytest.approx(0.5, abs=1e-6)
