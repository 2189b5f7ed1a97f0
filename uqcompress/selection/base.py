"""The selector contract: accept a prediction iff confidence >= threshold, the threshold chosen on calibration.

Example:
    >>> import torch
    >>> from uqcompress.selection import build_selector
    >>> sel = build_selector({"name": "coverage", "target": 0.5})
    >>> sel.fit(torch.tensor([0.9, 0.8, 0.7, 0.6], dtype=torch.float64), torch.tensor([True, True, False, True])).threshold
    0.8
"""
from __future__ import annotations

from typing import ClassVar

import torch

from uqcompress.uncertainty.base import Outputs


class Selector:
    """Base selector. ``needs``: extra outputs ``fit`` reads (``"mc"``, ``"features"``, ``"reference"``).

    ``truth`` names what ``correct`` in :meth:`fit` compares each prediction with: ``"labels"`` (the ground truth) or
    ``"reference"`` (the reference model's labels, ``Outputs.reference``, for selectors that control agreement).
    """

    name: ClassVar[str] = "base"
    needs: ClassVar[frozenset[str]] = frozenset()
    truth: ClassVar[str] = "labels"

    def __init__(self) -> None:
        self.threshold: float = float("-inf")

    def fit(self, confidence: torch.Tensor, correct: torch.Tensor, out: Outputs | None = None) -> "Selector":
        return self

    def accept(self, confidence: torch.Tensor, out: Outputs | None = None) -> torch.Tensor:
        """Boolean (N,): True = predict, False = abstain."""
        return confidence >= self.threshold

    def state(self) -> dict:
        return {"name": self.name, "threshold": self.threshold}

    def facts(self) -> dict[str, float | bool | str]:
        """What the fit established beyond the threshold (e.g. a certified bound), as flat result keys."""
        return {}
