"""Single-pass scorers on the softmax: ``msp`` (max probability)."""
from __future__ import annotations

import torch

from uqcompress.uncertainty import SCORERS
from uqcompress.uncertainty.base import Outputs, Scorer


@SCORERS.register("msp")
class MaxSoftmax(Scorer):
    """Maximum softmax probability (Hendrycks & Gimpel 2017): κ = max_k p_k."""

    name = "msp"

    def confidence(self, out: Outputs, probs: torch.Tensor) -> torch.Tensor:
        return probs.max(dim=-1).values
