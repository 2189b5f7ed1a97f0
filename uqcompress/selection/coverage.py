"""``selector=coverage``: the threshold that accepts a target fraction of the calibration split."""
from __future__ import annotations

import math

import torch

from uqcompress.selection import SELECTORS
from uqcompress.selection.base import Selector


@SELECTORS.register("coverage")
class CoverageSelector(Selector):
    """threshold = the ⌈target·N⌉-th largest calibration confidence (ties may accept a little more)."""

    name = "coverage"

    def __init__(self, target: float = 0.9) -> None:
        super().__init__()
        if not 0.0 < target <= 1.0:
            raise ValueError(f"selector.target={target} must be in (0, 1]")
        self.target = float(target)

    def fit(self, confidence, correct, out=None):
        if len(confidence) == 0:
            raise ValueError("cannot fit a coverage threshold on an empty calibration split")
        k = max(1, math.ceil(self.target * len(confidence)))
        self.threshold = float(torch.sort(confidence.double(), descending=True).values[k - 1])
        return self

    def state(self) -> dict:
        return {**super().state(), "target": self.target}
