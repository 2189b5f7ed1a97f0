"""Accuracy and calibration of one model's class probabilities.

Inputs are (N, K) probabilities (rows summing to 1 within 1e-3, taken as given: not renormalised) and integer labels
in [0, K); numpy or torch, any float dtype. The prediction is the first argmax of a row (as ``np.argmax``).
All sums are accumulated in float64.
"""
from __future__ import annotations

import numpy as np

from . import _validate as V
from ._kernels import argmax_rows, bin_index, row_blocks, top1


def _checked(probs: V.ArrayLike, labels: V.ArrayLike) -> tuple[np.ndarray, np.ndarray]:
    p = V.probs(probs, "probs")
    y = V.labels(labels, "labels", p.shape[0], p.shape[1])
    return p, y


def accuracy(probs: V.ArrayLike, labels: V.ArrayLike) -> float:
    """Fraction of rows whose argmax equals the label, in [0, 1]. NaN (with a warning) for N = 0.

    Example:
        >>> accuracy([[0.9, 0.1], [0.4, 0.6], [0.7, 0.3]], [0, 0, 0])
        0.6666666666666666
    """
    p, y = _checked(probs, labels)
    if p.shape[0] == 0:
        return V.warn_undefined("accuracy is undefined for 0 samples; returning NaN")
    return int(np.count_nonzero(argmax_rows(p) == y)) / p.shape[0]


def _ece(conf: np.ndarray, correct: np.ndarray, n_bins: int) -> float:
    # ECE = sum_b (n_b / N) |acc_b - conf_b| = (1/N) sum_b |sum_{i in b} (conf_i - correct_i)|: one bincount.
    c = conf.astype(np.float64)
    gap = np.bincount(bin_index(c, n_bins), weights=c - correct, minlength=n_bins)
    return float(np.abs(gap).sum() / c.size)


def _check_bins(n_bins: int) -> int:
    if isinstance(n_bins, bool) or not isinstance(n_bins, (int, np.integer)) or n_bins < 1:
        raise ValueError(f"n_bins must be a positive integer; got {n_bins!r}")
    return int(n_bins)


def ece(probs: V.ArrayLike, labels: V.ArrayLike, n_bins: int = 15) -> float:
    """Expected calibration error (top-label, L1) with ``n_bins`` equal-width confidence bins, in [0, 1].

    confidence = max_k p_k; bin b holds confidences in [b/n, (b+1)/n), the last bin is closed so confidence exactly
    1.0 falls in it (torchmetrics gives 1.0 a bin of its own). ECE = sum_b (n_b / N) |accuracy_b - mean confidence_b|,
    empty bins contribute 0. NaN (with a warning) for N = 0.

    Example:
        >>> round(ece([[1.0, 0.0], [1.0, 0.0], [0.95, 0.05], [0.95, 0.05]], [0, 1, 0, 0]), 12)  # torchmetrics: 0.275
        0.225
    """
    n_bins = _check_bins(n_bins)
    p, y = _checked(probs, labels)
    if p.shape[0] == 0:
        return V.warn_undefined("ece is undefined for 0 samples; returning NaN")
    conf, pred = top1(p)
    return _ece(conf, pred == y, n_bins)


def _nll_brier(p: np.ndarray, y: np.ndarray) -> tuple[float, float]:
    n = p.shape[0]
    p_true = np.take_along_axis(p, y[:, None], axis=1)[:, 0].astype(np.float64)
    nll = -np.log(np.maximum(p_true, V.TINY)).sum() / n
    # Brier = mean_i sum_k (p_ik - 1[k = y_i])^2 = mean_i (sum_k p_ik^2 - 2 p_iy + 1)
    sq = 0.0
    for rows in row_blocks(n, p.shape[1]):
        b = p[rows].astype(np.float64)
        sq += float(np.einsum("ij,ij->", b, b))
    brier = (sq - 2.0 * p_true.sum()) / n + 1.0
    return float(nll), float(brier)


def calibration(probs: V.ArrayLike, labels: V.ArrayLike, n_bins: int = 15) -> dict[str, float]:
    """ECE, NLL and Brier score of class probabilities.

    - ``ece``: as :func:`ece` (``n_bins`` equal-width bins, confidence 1.0 in the last bin), in [0, 1].
    - ``nll``: mean over samples of -ln p_y, in nats; p_y is clamped below at the smallest positive normal float64
      (2.2e-308) so a zero probability on the true class costs 708 nats instead of inf.
    - ``brier``: multi-class Brier score, mean over samples of sum_k (p_k - 1[k = y])^2, in [0, 2] (not halved).
    All three are NaN (with a warning) for N = 0.

    Example:
        >>> r = calibration([[0.8, 0.2], [0.3, 0.7]], [0, 0])
        >>> round(r["ece"], 6), round(r["nll"], 6), round(r["brier"], 6)
        (0.45, 0.713558, 0.53)
    """
    n_bins = _check_bins(n_bins)
    p, y = _checked(probs, labels)
    if p.shape[0] == 0:
        nan = V.warn_undefined("calibration is undefined for 0 samples; returning NaN")
        return {"ece": nan, "nll": nan, "brier": nan}
    conf, pred = top1(p)
    nll, brier = _nll_brier(p, y)
    return {"ece": _ece(conf, pred == y, n_bins), "nll": nll, "brier": brier}
