"""The scorer contract. Convention, stated once: **confidence is higher when the model is more confident.**

A scorer turns model outputs into (predictive probabilities, confidence per sample). It may be fit on the
calibration split (temperature) and on fit-split features (feature-space scorers).

Example:
    >>> import torch
    >>> from uqcompress.uncertainty.base import Outputs
    >>> from uqcompress.uncertainty import build_scorer
    >>> s = build_scorer({"name": "msp"})
    >>> s.score(Outputs(torch.tensor([[2.0, 0.0], [0.0, 0.0]]))).tolist()  # doctest: +ELLIPSIS
    [0.88..., 0.5]
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import torch


@dataclass
class Outputs:
    """What a model produced on one split.

    Attributes:
        logits: (N, K) float32.
        labels: (N,) int64 or None.
        mc_probs: (T, N, K) softmax of T stochastic passes (MC-dropout), when a scorer asked for them.
        features: (N, D) penultimate features, when a scorer asked for them.
    """

    logits: torch.Tensor
    labels: torch.Tensor | None = None
    mc_probs: torch.Tensor | None = None
    features: torch.Tensor | None = None

    def __len__(self) -> int:
        return self.logits.shape[0]


class Scorer:
    """Base scorer: softmax probabilities at temperature ``self.temperature``; subclasses define ``confidence``.

    ``needs`` lists the extra outputs the pipeline must collect: ``"mc"`` (MC-dropout passes) and/or
    ``"features"`` (penultimate features, on the fit split too).
    """

    name: ClassVar[str] = "base"
    needs: ClassVar[frozenset[str]] = frozenset()

    def __init__(self, temperature: bool | float = False) -> None:
        self.fit_temperature = temperature is True
        self.temperature = float(temperature) if not isinstance(temperature, bool) else 1.0

    def fit(self, calibration: Outputs, fit: Outputs | None = None) -> "Scorer":
        """Fit anything the scorer learns (temperature on calibration logits by NLL)."""
        if self.fit_temperature:
            from uqcompress.uncertainty.temperature import fit_temperature

            self.temperature = fit_temperature(calibration.logits, calibration.labels)
        return self

    def probs(self, out: Outputs) -> torch.Tensor:
        """Predictive class probabilities (N, K)."""
        return torch.softmax(out.logits.double() / self.temperature, dim=-1)

    def confidence(self, out: Outputs, probs: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def score(self, out: Outputs) -> torch.Tensor:
        """Confidence per sample (N,), float64, higher = more confident."""
        return self.confidence(out, self.probs(out))

    def state(self) -> dict:
        """What a deployed predictor needs to reproduce the scores (JSON-able)."""
        return {"name": self.name, "temperature": self.temperature}
