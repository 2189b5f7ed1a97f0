"""The scorer contract. Convention, stated once: **confidence is higher when the model is more confident.**

Every registered scorer is tested against it (a confident, near one-hot logit row scores higher than a flat row).
A scorer turns model outputs into (predictive probabilities, confidence per sample). It may be fit on the
calibration split (temperature scaling, composable with every scorer: ``uncertainty.temperature=true``) and on
fit-split features (feature-space scorers). The math lives in pure functions (:mod:`uqcompress.uncertainty.functional`);
``score`` takes :class:`Outputs` or a bare logits tensor, so single-pass scorers need no model.

Example:
    >>> import torch
    >>> from uqcompress.uncertainty.base import Outputs
    >>> from uqcompress.uncertainty import build_scorer
    >>> s = build_scorer({"name": "msp"})
    >>> s.score(Outputs(torch.tensor([[2.0, 0.0], [0.0, 0.0]]))).tolist()  # doctest: +ELLIPSIS
    [0.88..., 0.5]
    >>> s.score(torch.tensor([[2.0, 0.0]])).tolist()  # doctest: +ELLIPSIS
    [0.88...]
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

import torch


@dataclass
class Outputs:
    """What a model produced on one split.

    Attributes:
        logits: (N, K) float32.
        labels: (N,) int64 or None.
        mc_probs: (T, N, K) softmax of T stochastic passes (MC-dropout), when a scorer asked for them.
        features: (N, D) penultimate features, when a scorer asked for them.
        reference: (N,) int64 labels predicted by a reference model (the baseline) on the same inputs, when a
            selector asked for them (``needs = {"reference"}``); filled by the pipeline, not by the runner.
    """

    logits: torch.Tensor
    labels: torch.Tensor | None = None
    mc_probs: torch.Tensor | None = None
    features: torch.Tensor | None = None
    reference: torch.Tensor | None = None

    def __len__(self) -> int:
        return self.logits.shape[0]


def as_outputs(out: "Outputs | torch.Tensor") -> Outputs:
    """``out`` itself, or a bare logits tensor wrapped as :class:`Outputs`."""
    return out if isinstance(out, Outputs) else Outputs(torch.as_tensor(out))


def require(out: Outputs, field: str, scorer: str) -> torch.Tensor:
    """``out.<field>``, or a one-line error saying which scorer needs it and how the pipeline collects it."""
    value = getattr(out, field)
    if value is None:
        raise ValueError(f"scorer '{scorer}' needs Outputs.{field}; collect it with "
                         f"inference.collect_outputs(..., needs={{'{'mc' if field == 'mc_probs' else field}'}})")
    return value


class Scorer:
    """Base scorer: softmax probabilities at temperature ``self.temperature``; subclasses define ``confidence``.

    ``needs`` lists the extra outputs the pipeline must collect: ``"mc"`` (MC-dropout passes) and/or
    ``"features"`` (penultimate features, on the fit split too).
    """

    name: ClassVar[str] = "base"
    needs: ClassVar[frozenset[str]] = frozenset()

    def __init__(self, temperature: bool | float = False) -> None:
        if not isinstance(temperature, (bool, int, float)) or (not isinstance(temperature, bool) and temperature <= 0):
            raise ValueError(f"uncertainty.temperature={temperature!r} must be true, false or a positive number")
        self.fit_temperature = temperature is True
        self.temperature = float(temperature) if not isinstance(temperature, bool) else 1.0

    def fit(self, calibration: Outputs, fit: Outputs | None = None) -> "Scorer":
        """Fit anything the scorer learns (temperature on calibration logits by NLL)."""
        if self.fit_temperature:
            from uqcompress.uncertainty.temperature import fit_temperature

            self.temperature = fit_temperature(calibration.logits, calibration.labels)
        return self

    def probs(self, out: Outputs | torch.Tensor) -> torch.Tensor:
        """Predictive class probabilities (N, K), float64."""
        z = as_outputs(out).logits.double()
        return torch.softmax(z / self.temperature if self.temperature != 1.0 else z, dim=-1)  # z / 1.0 == z exactly

    def confidence(self, out: Outputs, probs: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def confidence_and_labels(self, out: Outputs, probs: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(confidence, ``probs.argmax(-1)``): what a deployed predictor answers with. A scorer whose confidence is
        the top probability gets both from one reduction (:class:`~uqcompress.uncertainty.softmax_scores.MaxSoftmax`).
        """
        return self.confidence(out, probs), probs.argmax(-1)

    def score(self, out: Outputs | torch.Tensor) -> torch.Tensor:
        """Confidence per sample (N,), float64, higher = more confident."""
        out = as_outputs(out)
        return self.confidence(out, self.probs(out))

    # ---- what a deployed predictor stores -------------------------------------------------------------------
    def config(self) -> dict[str, Any]:
        """Constructor options other than ``temperature`` (JSON-able): ``build_scorer({"name", **config})``."""
        return {}

    def buffers(self) -> dict[str, torch.Tensor]:
        """Tensors learned by ``fit`` other than the temperature (class means, a feature bank, ...)."""
        return {}

    def load_buffers(self, buffers: dict[str, torch.Tensor]) -> "Scorer":
        for k, v in buffers.items():
            setattr(self, k, v)
        return self

    def state(self) -> dict:
        """What a deployed predictor needs to reproduce the scores (JSON-able; tensors in :meth:`buffers`)."""
        return {"name": self.name, "temperature": self.temperature, "config": self.config()}
