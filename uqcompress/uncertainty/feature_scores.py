"""Feature-space scorers that need no extra model, fit on the fit split's penultimate features (the input of the
classifier head): ``mahalanobis`` and ``knn``. Predictive probabilities stay the (temperature-scaled) softmax;
only the confidence changes.

* ``mahalanobis`` (Lee et al. 2018): class-conditional Gaussians with a shared covariance;
  κ = -min_k (f - μ_k)ᵀ Σ⁻¹ (f - μ_k).
* ``knn`` (Sun et al. 2022): κ = cosine similarity to the k-th nearest fit-split feature.

Example:
    >>> import torch
    >>> from uqcompress.uncertainty import build_scorer
    >>> from uqcompress.uncertainty.base import Outputs
    >>> g = torch.Generator().manual_seed(0)
    >>> fit = Outputs(torch.zeros(200, 2), torch.arange(200) % 2, features=torch.randn(200, 4, generator=g))
    >>> s = build_scorer({"name": "knn", "k": 5}).fit(fit, fit)
    >>> near, far = fit.features[:1], -5 * fit.features[:1].sign()
    >>> c = s.score(Outputs(torch.zeros(2, 2), features=torch.cat([near, far]))); bool(c[0] > c[1])
    True
"""
from __future__ import annotations

import torch

from uqcompress.uncertainty import SCORERS
from uqcompress.uncertainty import functional as F
from uqcompress.uncertainty.base import Outputs, Scorer, require


class FeatureScorer(Scorer):
    needs = frozenset({"features"})

    def _fit_features(self, fit: Outputs | None) -> tuple[torch.Tensor, torch.Tensor]:
        if fit is None:
            raise ValueError(f"scorer '{self.name}' must be fit on the fit split's features (fit=None given)")
        feats = require(fit, "features", self.name)
        if fit.labels is None:
            raise ValueError(f"scorer '{self.name}' needs labels on the fit split")
        return feats, fit.labels


@SCORERS.register("mahalanobis")
class Mahalanobis(FeatureScorer):
    """κ = -min_k squared Mahalanobis distance to the class means (shared covariance, small diagonal shrinkage)."""

    name = "mahalanobis"

    def __init__(self, temperature: bool | float = False, shrinkage: float = 1e-6) -> None:
        super().__init__(temperature)
        if shrinkage < 0:
            raise ValueError(f"uncertainty.shrinkage={shrinkage} must be >= 0")
        self.shrinkage = float(shrinkage)
        self.means: torch.Tensor | None = None
        self.precision: torch.Tensor | None = None

    def fit(self, calibration: Outputs, fit: Outputs | None = None) -> "Mahalanobis":
        super().fit(calibration, fit)
        feats, labels = self._fit_features(fit)
        self.means, self.precision = F.class_gaussians(feats, labels, calibration.logits.shape[1], self.shrinkage)
        return self

    def confidence(self, out: Outputs, probs: torch.Tensor) -> torch.Tensor:
        if self.means is None:
            raise ValueError("scorer 'mahalanobis' is not fit; call fit(calibration, fit) first")
        return F.mahalanobis(require(out, "features", self.name), self.means, self.precision)

    def config(self) -> dict:
        return {"shrinkage": self.shrinkage}

    def buffers(self) -> dict[str, torch.Tensor]:
        return {"means": self.means, "precision": self.precision} if self.means is not None else {}


@SCORERS.register("knn")
class KNN(FeatureScorer):
    """κ = cosine similarity of the L2-normalised feature to its k-th nearest normalised fit-split feature."""

    name = "knn"

    def __init__(self, k: int = 10, temperature: bool | float = False) -> None:
        super().__init__(temperature)
        if int(k) < 1:
            raise ValueError(f"uncertainty.k={k} must be >= 1")
        self.k = int(k)
        self.bank: torch.Tensor | None = None

    def fit(self, calibration: Outputs, fit: Outputs | None = None) -> "KNN":
        super().fit(calibration, fit)
        feats, _ = self._fit_features(fit)
        if self.k > len(feats):
            raise ValueError(f"uncertainty.k={self.k} exceeds the {len(feats)} fit-split features")
        self.bank = F.normalize(feats)
        return self

    def confidence(self, out: Outputs, probs: torch.Tensor) -> torch.Tensor:
        if self.bank is None:
            raise ValueError("scorer 'knn' is not fit; call fit(calibration, fit) first")
        return F.knn(require(out, "features", self.name), self.bank, self.k)

    def config(self) -> dict:
        return {"k": self.k}

    def buffers(self) -> dict[str, torch.Tensor]:
        return {"bank": self.bank} if self.bank is not None else {}
