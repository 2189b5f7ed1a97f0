"""Every number uqcompress reports, defined once (DESIGN.md "Definitions"), as pure functions over arrays.

Inputs are numpy arrays or torch tensors of any float dtype (CPU or not; converted without copying where possible);
probabilities are (N, K) rows summing to 1 (within 1e-3), labels are ints in [0, K), confidence is higher = more
confident. Results are Python floats (or dicts / tuples of them), accumulated in float64. Bad input raises a
one-line ``ValueError`` naming the argument; an undefined result is NaN with an :class:`UndefinedMetricWarning`.

Example:
    >>> from uqcompress import metrics as M
    >>> M.accuracy([[0.9, 0.1], [0.2, 0.8]], [0, 0])
    0.5
"""
from __future__ import annotations

from ._validate import UndefinedMetricWarning
from .agreement import (KL_DISTRIBUTION_KEYS, flips, js_divergence, js_from_logits, kl_distribution, kl_divergence,
                        kl_from_logits, kl_rows_from_logits)
from .bootstrap import bootstrap_ci
from .cascade import cascade, cascade_cost, cascade_curve, deferral_for_agreement
from .classification import accuracy, calibration, ece
from .correlation import spearman
from .ood import auroc, ood
from .selective import aurc, risk_coverage_curve, selective

__all__ = [
    "KL_DISTRIBUTION_KEYS",
    "UndefinedMetricWarning",
    "accuracy",
    "aurc",
    "auroc",
    "bootstrap_ci",
    "calibration",
    "cascade",
    "cascade_cost",
    "cascade_curve",
    "deferral_for_agreement",
    "ece",
    "flips",
    "js_divergence",
    "js_from_logits",
    "kl_distribution",
    "kl_divergence",
    "kl_from_logits",
    "kl_rows_from_logits",
    "ood",
    "risk_coverage_curve",
    "selective",
    "spearman",
]
