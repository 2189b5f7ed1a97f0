"""Out-of-distribution detection from a confidence score: OOD is the positive class, score = -confidence.

One sort of each split gives every number (see ``_kernels.merged_cumcounts``). Thresholds sit at the distinct
confidence values, so tied scores are always counted together (half credit in AUROC, as Mann-Whitney with average
ranks); the results equal scikit-learn's ``roc_auc_score``, ``average_precision_score`` and ``roc_curve``.
"""
from __future__ import annotations

import numpy as np

from . import _validate as V
from ._kernels import merged_cumcounts

TPR_TARGET_PERCENT = 95


def _counts(confidence_id: V.ArrayLike, confidence_ood: V.ArrayLike):
    cid = V.scores(confidence_id, "confidence_id")
    cood = V.scores(confidence_ood, "confidence_ood")
    n_id, n_ood = cid.shape[0], cood.shape[0]
    if n_id == 0 or n_ood == 0:
        empty = "confidence_id" if n_id == 0 else "confidence_ood"
        return None, n_id, n_ood, empty
    # ascending confidence = descending OOD score; flagging OOD at threshold c means confidence <= c
    _, fp, tp = merged_cumcounts(cid, cood)  # ID (false positives) and OOD (true positives) at each threshold
    return (fp, tp), n_id, n_ood, None


def _auroc(fp: np.ndarray, tp: np.ndarray, n_id: int, n_ood: int) -> float:
    # trapezoid under (FPR, TPR) from (0, 0); counts are exact ints, so 2 * area is an exact integer sum
    tp_prev = np.concatenate([[0], tp[:-1]])
    dfp = np.diff(fp, prepend=0)
    return float(dfp @ (tp + tp_prev).astype(np.float64)) / (2.0 * n_id * n_ood)


def auroc(confidence_id: V.ArrayLike, confidence_ood: V.ArrayLike) -> float:
    """AUROC of detecting OOD samples (positives) by low confidence, in [0, 1]; 0.5 = chance.

    Equals P(conf_ood < conf_id) + P(conf_ood = conf_id) / 2 over ID x OOD pairs (Mann-Whitney U with ties).
    NaN (with a warning) when either split is empty.

    Example:
        >>> auroc([0.9, 0.8, 0.7], [0.2, 0.8])
        0.75
    """
    counts, n_id, n_ood, empty = _counts(confidence_id, confidence_ood)
    if counts is None:
        return V.warn_undefined(f"auroc is undefined: {empty} is empty (one class only); returning NaN")
    return _auroc(*counts, n_id, n_ood)


def ood(confidence_id: V.ArrayLike, confidence_ood: V.ArrayLike) -> dict[str, float]:
    """OOD detection metrics; OOD = positive class, score = -confidence, thresholds at distinct score values.

    - ``auroc``: as :func:`auroc`.
    - ``fpr95``: FPR on ID at the first threshold (decreasing score) where TPR on OOD reaches >= 0.95; the same as
      ``fpr[argmax(tpr >= 0.95)]`` of ``sklearn.metrics.roc_curve`` (no interpolation between thresholds).
    - ``aupr_out``: average precision with OOD positive, score -confidence (``average_precision_score``:
      sum_n (R_n - R_{n-1}) P_n, no interpolation).
    - ``aupr_in``: average precision with ID positive, score +confidence.
    All NaN (with one warning) when either split is empty.

    Example:
        >>> r = ood([0.9, 0.8, 0.7], [0.2, 0.8])
        >>> r["auroc"], r["fpr95"], round(r["aupr_in"], 4), round(r["aupr_out"], 4)
        (0.75, 0.6666666666666666, 0.8056, 0.75)
    """
    counts, n_id, n_ood, empty = _counts(confidence_id, confidence_ood)
    if counts is None:
        nan = V.warn_undefined(f"ood metrics are undefined: {empty} is empty (one class only); returning NaN")
        return {"auroc": nan, "fpr95": nan, "aupr_in": nan, "aupr_out": nan}
    fp, tp = counts
    # FPR95: first threshold with tp / n_ood >= 0.95, decided in integers (100 tp >= 95 n_ood)
    first = int(np.searchsorted(100 * tp, TPR_TARGET_PERCENT * n_ood, side="left"))
    fpr95 = fp[first] / n_id
    # AUPR-Out: recall steps where OOD samples enter, precision tp / (tp + fp) there
    dtp = np.diff(tp, prepend=0)
    aupr_out = float(dtp @ (tp / (tp + fp))) / n_ood
    # AUPR-In: ID positive, thresholds by decreasing confidence: counts of confidence >= value
    tp_in = n_id - np.concatenate([[0], fp[:-1]])
    fp_in = n_ood - np.concatenate([[0], tp[:-1]])
    aupr_in = float(np.diff(fp, prepend=0) @ (tp_in / (tp_in + fp_in))) / n_id
    return {"auroc": _auroc(fp, tp, n_id, n_ood), "fpr95": float(fpr95), "aupr_in": aupr_in, "aupr_out": aupr_out}
