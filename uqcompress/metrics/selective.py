"""Selective prediction: what a selector accepts or abstains on, and the risk-coverage trade-off of a confidence.

``confidence`` is any real score, higher = more confident (not only softmax); ``correct`` is a bool / 0-1 vector
(prediction equals label); ``accept`` is a bool / 0-1 vector (the selector answers) or a float threshold t
(accept <=> confidence >= t). Counts are exact integers; every ratio is float64.

Risk-coverage curve and AURC, ties grouped: samples are sorted by confidence descending and a cut-off is placed at
each *distinct* confidence value c, accepting every sample with confidence >= c. Samples with equal confidence are
accepted or rejected together, so nothing depends on the order of tied samples (fp16 models emit many ties).
"""
from __future__ import annotations

import math
from typing import Iterator

import numpy as np

from . import _validate as V
from ._kernels import dot, merged_cumcount_blocks


def _checked(confidence: V.ArrayLike, correct: V.ArrayLike) -> tuple[np.ndarray, np.ndarray]:
    conf = V.scores(confidence, "confidence")
    return conf, V.binary(correct, "correct", conf.shape[0], "confidence")


def _accept_mask(confidence: np.ndarray, accept: V.ArrayLike | float) -> np.ndarray:
    if isinstance(accept, (float, int, np.floating, np.integer)) and not isinstance(accept, (bool, np.bool_)):
        t = float(accept)
        if math.isnan(t):
            raise ValueError("accept threshold is NaN; give a number or a bool mask")
        return confidence >= t
    return V.binary(accept, "accept", confidence.shape[0], "confidence")


def selective(confidence: V.ArrayLike, correct: V.ArrayLike, accept: V.ArrayLike | float) -> dict[str, float]:
    """Coverage, selective risk, saved-from-misclassification rate and error catch rate of an accept decision.

    - ``coverage`` = |accepted| / N.
    - ``selective_risk`` = |accepted and wrong| / |accepted|: error rate among accepted (NaN if none accepted).
    - ``saved_rate`` = |abstained and wrong| / |abstained| (Singhal & Srinivasan 2024): of what the selector ignored,
      the share that would have been errors (NaN if nothing abstained).
    - ``error_catch_rate`` = |abstained and wrong| / |wrong|: share of all errors caught (NaN if there are no errors).
    Undefined entries are NaN with an :class:`UndefinedMetricWarning`, never 0.

    Example:
        >>> selective([0.9, 0.8, 0.3, 0.2], [1, 0, 0, 1], accept=0.5)
        {'coverage': 0.5, 'selective_risk': 0.5, 'saved_rate': 0.5, 'error_catch_rate': 0.5}
    """
    conf, ok = _checked(confidence, correct)
    acc = _accept_mask(conf, accept)
    n = conf.shape[0]
    n_acc = int(np.count_nonzero(acc))
    n_wrong = n - int(np.count_nonzero(ok))
    acc_wrong = int(np.count_nonzero(acc > ok))  # accepted and not correct
    abst_wrong = n_wrong - acc_wrong
    out = {
        "coverage": n_acc / n if n else V.warn_undefined("coverage is undefined for 0 samples; returning NaN"),
        "selective_risk": acc_wrong / n_acc if n_acc else float("nan"),
        "saved_rate": abst_wrong / (n - n_acc) if n > n_acc else float("nan"),
        "error_catch_rate": abst_wrong / n_wrong if n_wrong else float("nan"),
    }
    if n:
        if not n_acc:
            V.warn_undefined("selective_risk is undefined: nothing was accepted; returning NaN")
        if n == n_acc:
            V.warn_undefined("saved_rate is undefined: nothing was abstained on; returning NaN")
        if not n_wrong:
            V.warn_undefined("error_catch_rate is undefined: there are no errors; returning NaN")
    return out


def _cutoffs(conf: np.ndarray, ok: np.ndarray) -> Iterator[tuple[np.ndarray, np.ndarray, np.ndarray]]:
    """Per distinct confidence, in ascending blocks: tie-group size, #samples and #wrong with confidence >= value."""
    n, n_wrong = conf.size, conf.size - int(np.count_nonzero(ok))
    below = below_wrong = 0  # samples (wrong samples) with confidence below the block
    for _, cum_ok, cum_wrong in merged_cumcount_blocks(conf[ok], conf[~ok]):
        cum = cum_ok + cum_wrong  # samples with confidence <= value
        cum_below = np.concatenate([[below], cum[:-1]])  # samples with confidence < value
        yield cum - cum_below, n - cum_below, n_wrong - np.concatenate([[below_wrong], cum_wrong[:-1]])
        below, below_wrong = int(cum[-1]), int(cum_wrong[-1])


def risk_coverage_curve(confidence: V.ArrayLike, correct: V.ArrayLike) -> tuple[np.ndarray, np.ndarray]:
    """Risk-coverage curve with tied confidences grouped.

    Returns ``(coverage, risk)``, float64 arrays with one point per distinct confidence value c, in order of
    decreasing c (increasing coverage): coverage = |confidence >= c| / N, risk = error rate among those samples.
    The last point has coverage 1 and risk = overall error rate. Empty arrays for N = 0.

    Example:
        >>> cov, risk = risk_coverage_curve([0.9, 0.8, 0.8, 0.1], [1, 0, 1, 0])
        >>> cov.tolist(), risk.tolist()
        ([0.25, 0.75, 1.0], [0.0, 0.3333333333333333, 0.5])
    """
    conf, ok = _checked(confidence, correct)
    if conf.size == 0:
        return np.zeros(0), np.zeros(0)
    parts = list(_cutoffs(conf, ok))
    accepted = np.concatenate([p[1] for p in parts])[::-1]
    accepted_wrong = np.concatenate([p[2] for p in parts])[::-1]
    return accepted / conf.size, accepted_wrong / accepted


def aurc(confidence: V.ArrayLike, correct: V.ArrayLike) -> dict[str, float]:
    """Area under the risk-coverage curve (AURC) and excess AURC (E-AURC, Geifman et al. 2019), in [0, 1].

    AURC = mean selective risk over the curve: each sample contributes the risk at the cut-off of its own tie group,
    i.e. AURC = (1/N) sum_i risk({j : confidence_j >= confidence_i}). With no ties this is exactly
    (1/N) sum_{k=1..N} risk of the k most confident samples; it is the plain mean, not a trapezoid rescaled by
    (1 - 1/N) as in torch-uncertainty.
    E-AURC = AURC - AURC*, AURC* = r + (1 - r) ln(1 - r) with r the overall error rate (AURC* = 0 at r = 0 and 1 at
    r = 1), the area of a perfect ranking in the large-N limit; E-AURC >= 0 for every finite sample.
    Both NaN (with a warning) for N = 0.

    Example:
        >>> aurc([0.9, 0.8, 0.7], [0, 1, 1])["aurc"]  # (1/1 + 1/2 + 1/3) / 3
        0.611111111111111
    """
    conf, ok = _checked(confidence, correct)
    n = conf.size
    if n == 0:
        nan = V.warn_undefined("aurc is undefined for 0 samples; returning NaN")
        return {"aurc": nan, "eaurc": nan}
    area = sum(float(dot(group, wrong / accepted)) for group, accepted, wrong in _cutoffs(conf, ok)) / n
    n_wrong = n - int(np.count_nonzero(ok))
    r = n_wrong / n
    optimal = 1.0 if n_wrong == n else r + (1.0 - r) * math.log1p(-r)
    return {"aurc": area, "eaurc": area - optimal}
