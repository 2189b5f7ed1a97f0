"""``selector=risk``: the largest calibration coverage whose selective risk is at most ``target``.

Samples are sorted by confidence (descending); a threshold can only cut between distinct confidence values, so ties
are accepted or rejected together. When even the most confident group exceeds the target, everything is rejected
(threshold = +inf) and a log line says so. The pipeline reports calibration and test coverage / risk side by side,
so a user sees whether the target held out of sample.

Example:
    >>> import torch
    >>> from uqcompress.selection import build_selector
    >>> conf = torch.tensor([0.9, 0.8, 0.7, 0.6, 0.5], dtype=torch.float64)
    >>> correct = torch.tensor([True, True, False, True, False])
    >>> build_selector({"name": "risk", "target": 0.25}).fit(conf, correct).threshold   # 3 of 4 right at 0.6
    0.6
"""
from __future__ import annotations

import logging

import torch

from uqcompress.selection import SELECTORS
from uqcompress.selection.base import Selector

log = logging.getLogger(__name__)


def max_coverage_threshold(confidence: torch.Tensor, correct: torch.Tensor, target: float) -> float:
    """Smallest threshold t such that risk({κ >= t}) <= target (largest coverage); +inf if none."""
    if len(confidence) == 0:
        raise ValueError("cannot fit a risk threshold on an empty calibration split")
    conf = confidence.double()
    order = torch.argsort(conf, descending=True, stable=True)
    c = conf[order]
    errors = torch.cumsum((~correct.bool()[order]).double(), 0)
    n = torch.arange(1, len(c) + 1, dtype=torch.float64)
    last_of_group = torch.ones(len(c), dtype=torch.bool)
    last_of_group[:-1] = c[1:] != c[:-1]          # cuts only between distinct confidence values
    ok = (errors / n <= target + 1e-12) & last_of_group
    if not ok.any():
        return float("inf")
    return float(c[ok.nonzero().max()])


@SELECTORS.register("risk")
class RiskSelector(Selector):
    """threshold = the cut with the largest calibration coverage whose selective risk <= ``target``."""

    name = "risk"

    def __init__(self, target: float = 0.05) -> None:
        super().__init__()
        if not 0.0 <= target < 1.0:
            raise ValueError(f"selector.target={target} must be a selective risk in [0, 1)")
        self.target = float(target)

    def fit(self, confidence, correct, out=None):
        self.threshold = max_coverage_threshold(confidence, correct, self.target)
        if self.threshold == float("inf"):
            # a log line, not a warning: the run silences torch's UserWarning chatter around this step
            log.warning("selector=risk: no coverage reaches selective risk <= %s on the %d calibration samples; "
                        "abstaining on everything", self.target, len(confidence))
        return self

    def state(self) -> dict:
        return {**super().state(), "target": self.target}
