"""``selector=threshold``: accept iff confidence >= a fixed ``value`` (nothing is fit).

Example:
    >>> import torch
    >>> from uqcompress.selection import build_selector
    >>> build_selector({"name": "threshold", "value": 0.5}).accept(torch.tensor([0.4, 0.5, 0.9])).tolist()
    [False, True, True]
"""
from __future__ import annotations

import math

from uqcompress.selection import SELECTORS
from uqcompress.selection.base import Selector


@SELECTORS.register("threshold")
class ThresholdSelector(Selector):
    """A fixed threshold in the scorer's own units (e.g. a probability for msp, nats for entropy)."""

    name = "threshold"

    def __init__(self, value: float = 0.5) -> None:
        super().__init__()
        if value is None or (isinstance(value, float) and math.isnan(value)):
            raise ValueError(f"selector.value={value!r} must be a number")
        self.threshold = float(value)

    def state(self) -> dict:
        return {**super().state(), "value": self.threshold}
