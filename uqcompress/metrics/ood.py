"""Out-of-distribution detection from a confidence score: OOD is the positive class, score = -confidence.

One sort of each split and one sweep give every number (see ``_kernels.merged_cumcount_blocks``). Thresholds sit
at the distinct confidence values, so tied scores are always counted together (half credit in AUROC, as
Mann-Whitney with average ranks); the results equal scikit-learn's ``roc_auc_score``, ``average_precision_score``
and ``roc_curve``.
"""
from __future__ import annotations

import numpy as np

from . import _validate as V
from ._kernels import dot, merged_cumcount_blocks

TPR_TARGET_PERCENT = 95


def _checked(confidence_id: V.ArrayLike, confidence_ood: V.ArrayLike) -> tuple[np.ndarray, np.ndarray, str | None]:
    cid = V.scores(confidence_id, "confidence_id")
    cood = V.scores(confidence_ood, "confidence_ood")
    empty = "confidence_id" if cid.size == 0 else "confidence_ood" if cood.size == 0 else None
    return cid, cood, empty


def _curve_sums(cid: np.ndarray, cood: np.ndarray, all_metrics: bool) -> dict[str, float]:
    """One sweep over the distinct confidence values, ascending (= OOD score descending).

    Flagging OOD at threshold c means confidence <= c, so at each distinct value the cumulative counts are the
    false positives (ID) and true positives (OOD); ``prev_*`` are the counts strictly below the value.
    """
    n_id, n_ood = cid.size, cood.size
    tp_target = -(-TPR_TARGET_PERCENT * n_ood // 100)  # smallest tp with tp / n_ood >= 0.95, in integers
    twice_area = 0  # 2 * AUROC * n_id * n_ood: an exact integer (trapezoids over integer counts)
    ap_out = ap_in = 0.0
    fpr95 = float("nan")
    prev_fp = prev_tp = 0
    for _, fp, tp in merged_cumcount_blocks(cid, cood):
        below_fp = np.concatenate([[prev_fp], fp[:-1]])
        below_tp = np.concatenate([[prev_tp], tp[:-1]])
        d_fp = fp - below_fp
        twice_area += int(dot(d_fp, tp + below_tp))
        if all_metrics:
            ap_out += float(dot(tp - below_tp, tp / (tp + fp)))  # recall step x precision, OOD positive
            in_tp = n_id - below_fp  # ID positive, score +confidence: counts of confidence >= value
            ap_in += float(dot(d_fp, in_tp / (in_tp + (n_ood - below_tp))))
            if prev_tp < tp_target <= tp[-1]:
                fpr95 = float(fp[np.searchsorted(tp, tp_target)]) / n_id
        prev_fp, prev_tp = int(fp[-1]), int(tp[-1])
    return {"auroc": twice_area / (2.0 * n_id * n_ood), "fpr95": fpr95,
            "aupr_in": ap_in / n_id, "aupr_out": ap_out / n_ood}


def auroc(confidence_id: V.ArrayLike, confidence_ood: V.ArrayLike) -> float:
    """AUROC of detecting OOD samples (positives) by low confidence, in [0, 1]; 0.5 = chance.

    Equals P(conf_ood < conf_id) + P(conf_ood = conf_id) / 2 over ID x OOD pairs (Mann-Whitney U with ties).
    NaN (with a warning) when either split is empty.

    Example:
        >>> auroc([0.9, 0.8, 0.7], [0.2, 0.8])
        0.75
    """
    cid, cood, empty = _checked(confidence_id, confidence_ood)
    if empty:
        return V.warn_undefined(f"auroc is undefined: {empty} is empty (one class only); returning NaN")
    return _curve_sums(cid, cood, all_metrics=False)["auroc"]


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
    cid, cood, empty = _checked(confidence_id, confidence_ood)
    if empty:
        nan = V.warn_undefined(f"ood metrics are undefined: {empty} is empty (one class only); returning NaN")
        return {"auroc": nan, "fpr95": nan, "aupr_in": nan, "aupr_out": nan}
    return _curve_sums(cid, cood, all_metrics=True)
