"""Small, faithful re-implementations of peer libraries' AURC (not installed here), used by the tests and by
scripts/bench_metrics.py to show their pitfalls and to time them. Plus a loader for torchmetrics behind the
torchvision shim. Nothing here is used by uqcompress itself.
"""
from __future__ import annotations

import numpy as np
import torch


def torchmetrics_functional():
    """``torchmetrics.functional.classification``, importable next to this machine's torchvision wheel."""
    from uqcompress._compat import install_shim

    install_shim()
    from torchmetrics.functional import classification

    return classification


def torch_uncertainty_aurc(confidence, correct) -> float:
    """torch-uncertainty ``AURC.compute``: argsort (arbitrary order among ties), cumulative error rate at every
    sample, trapezoid over coverage 1/N .. 1, divided by (1 - 1/N)."""
    scores = torch.as_tensor(np.asarray(confidence))
    errors = torch.as_tensor(~np.asarray(correct, dtype=bool)).to(scores.dtype)
    errors = errors[scores.argsort(descending=True)]
    n = scores.size(0)
    rates = errors.cumsum(dim=-1) / torch.arange(1, n + 1, dtype=scores.dtype)
    cov = torch.arange(1, n + 1, dtype=scores.dtype) / n
    return float(torch.trapezoid(rates, cov) / (1 - 1 / n))


def pytorch_ood_aurc(confidence, correct) -> float:
    """pytorch-ood ``1 - aurra``: numpy argsort reversed (arbitrary order among ties), mean of the cumulative error
    rate over all response rates."""
    order = np.argsort(np.asarray(confidence))[::-1]
    wrong = ~np.asarray(correct, dtype=bool)
    rates = np.cumsum(wrong[order]) / np.arange(1, len(order) + 1)
    return float(np.mean(rates))
