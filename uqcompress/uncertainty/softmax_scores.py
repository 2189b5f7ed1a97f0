"""Single-pass scorers on the logits: ``msp``, ``entropy``, ``margin``, ``energy``, and ``temperature`` (MSP after
temperature scaling). Every one composes with ``temperature=true`` (logits / τ, τ fit on calibration).

Example:
    >>> import torch
    >>> from uqcompress.uncertainty import build_scorer
    >>> z = torch.tensor([[3.0, 0.0, 0.0], [1.0, 1.0, 0.0]])
    >>> build_scorer({"name": "margin"}).score(z).tolist()  # doctest: +ELLIPSIS
    [0.864..., 0.0]
"""
from __future__ import annotations

import torch

from uqcompress.uncertainty import SCORERS
from uqcompress.uncertainty import functional as F
from uqcompress.uncertainty.base import Outputs, Scorer


@SCORERS.register("msp")
class MaxSoftmax(Scorer):
    """Maximum softmax probability (Hendrycks & Gimpel 2017): κ = max_k p_k."""

    name = "msp"

    def confidence(self, out: Outputs, probs: torch.Tensor) -> torch.Tensor:
        return probs.amax(dim=-1)  # = max(dim=-1).values, without the indices

    def confidence_and_labels(self, out: Outputs, probs: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``probs.max(-1)``: the values are ``amax`` and the indices ``argmax`` (the first maximum, as argmax), from
        one reduction instead of two.

        >>> p = torch.tensor([[0.2, 0.4, 0.4], [0.7, 0.2, 0.1]], dtype=torch.float64)
        >>> conf, labels = MaxSoftmax().confidence_and_labels(None, p)
        >>> conf.tolist(), labels.tolist()
        ([0.4, 0.7], [1, 0])
        """
        if type(self).confidence is not MaxSoftmax.confidence:  # a subclass that scores otherwise
            return super().confidence_and_labels(out, probs)
        conf, labels = probs.max(dim=-1)
        return conf, labels


@SCORERS.register("entropy")
class NegEntropy(Scorer):
    """κ = -H[p] = Σ_k p_k log p_k (nats), from log-softmax of z/τ."""

    name = "entropy"

    def confidence(self, out: Outputs, probs: torch.Tensor) -> torch.Tensor:
        return F.neg_entropy(out.logits, self.temperature)


@SCORERS.register("margin")
class Margin(Scorer):
    """κ = p_(1) - p_(2), the gap between the two most probable classes."""

    name = "margin"

    def confidence(self, out: Outputs, probs: torch.Tensor) -> torch.Tensor:
        return F.margin(out.logits, self.temperature)


@SCORERS.register("energy")
class NegEnergy(Scorer):
    """κ = -E = T·logsumexp(z'/T) with z' = z/τ (τ = temperature scaling, T = ``energy_temperature``)."""

    name = "energy"

    def __init__(self, temperature: bool | float = False, energy_temperature: float = 1.0) -> None:
        super().__init__(temperature)
        if not energy_temperature > 0:
            raise ValueError(f"uncertainty.energy_temperature={energy_temperature} must be > 0")
        self.energy_temperature = float(energy_temperature)

    def confidence(self, out: Outputs, probs: torch.Tensor) -> torch.Tensor:
        return F.neg_energy(out.logits.double() / self.temperature, self.energy_temperature)

    def config(self) -> dict:
        return {"energy_temperature": self.energy_temperature}


@SCORERS.register("temperature")
class TemperatureScaled(MaxSoftmax):
    """MSP after temperature scaling (Guo et al. 2017); τ fit by NLL on calibration logits unless a number is given.

    Same as ``uncertainty=msp uncertainty.temperature=true``.
    """

    name = "temperature"

    def __init__(self, temperature: bool | float = True) -> None:
        super().__init__(temperature)
