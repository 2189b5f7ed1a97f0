"""``uncertainty=flip_aware``: a logistic regression, fit on the calibration split, that predicts where the compressed
model's answer differs from the baseline's, from what the compressed model alone gives at deployment.

Training target: ``flip_i = 1[argmax p_compressed(x_i) != baseline label_i]`` on the calibration split (the pipeline
passes the baseline's calibration answers in ``Outputs.reference``; the test split's are never passed). Inputs
(:func:`flip_features`, every one computed from the compressed model's own outputs):

* softmax statistics: max probability, margin, negative entropy, negative energy, log(1 - max p), log(margin);
* the predicted class and the runner-up, one-hot (flips concentrate on a few confusable pairs of classes);
* with penultimate features (``features=true``): the distance to the predicted class's mean, to the nearest mean
  and the gap between the two nearest means (class means of the fit split's features, or without them of the
  calibration rows the scorer is fit on; distances scaled by the features' RMS spread around their class means),
  and optionally the first ``projection`` principal components of the features;
* with MC-dropout passes (``mc=true``): the mutual information, the variance of the predicted class's probability
  and the share of passes whose answer differs from the deterministic one.

Confidence = minus the fitted log-odds of a flip (higher = less likely to have flipped = more confident). The model is
``sklearn.linear_model.LogisticRegression`` (Newton-Cholesky solver, balanced class weights) on standardised inputs;
what is stored is one weight vector and bias in the raw feature space (float64 tensors), so a predictor file loads
with ``torch.load(weights_only=True)``.

Cross-fitting and the guarantee (``fitting``):

* ``split`` (exact): the calibration split is cut in two seeded halves (``fit_fraction`` for the scorer). The
  scorer is fit on part A only; the selector (its threshold, and the bound of ``risk_guarantee`` /
  ``agreement_guarantee``) sees part B only (:attr:`selection_rows`). On B the scorer is a fixed function that never
  saw B, and B's samples are exchangeable with the test samples, so SGR's Clopper-Pearson argument holds exactly as
  for ``msp``: the guarantee is valid at level delta, on |B| samples.
* ``crossfit`` (approximate for a guarantee): K folds; each fold is scored by the model fit on the other K-1 folds
  (out-of-fold scores, what the selector sees, on all calibration samples); the deployed model averages the K fold
  models' weights. The out-of-fold scores come from K slightly different functions, none of which is the deployed
  one, so calibration and test scores are not exchangeable and a certified bound is approximate. Measured, not
  proved: in the resplit simulation of ``tests/uncertainty/test_flip_aware.py`` (synthetic, 200 calibration draws of
  1,000, target 0.08, delta 0.1) both modes exceeded the target in 1% of the draws; crossfit answered 75% of the
  inputs, split 73%.
* ``auto`` (default): ``split`` when the selector certifies a bound (it has ``delta``), else ``crossfit``.

Without any flip on calibration (the baseline scored against itself, or fewer than 2 flips or non-flips) there is
nothing to learn: the scorer falls back to the max softmax probability and says so in :meth:`facts`.

Example:
    >>> import torch
    >>> from uqcompress.uncertainty import build_scorer
    >>> from uqcompress.uncertainty.base import Outputs
    >>> g = torch.Generator().manual_seed(0)
    >>> z = torch.randn(600, 3, generator=g) * 3
    >>> ref = z.argmax(-1).clone(); ref[z[:, 2] > 2] = (ref[z[:, 2] > 2] + 1) % 3   # flips where z_2 is large
    >>> s = build_scorer({"name": "flip_aware", "features": False, "fitting": "crossfit"})
    >>> s = s.fit(Outputs(z, reference=ref))
    >>> s.facts()["flip_aware_fallback"], s.score(z).shape
    (False, torch.Size([600]))
"""
from __future__ import annotations

import logging
import math
from typing import Any

import numpy as np
import torch

from uqcompress.uncertainty import SCORERS
from uqcompress.uncertainty import functional as F
from uqcompress.uncertainty.base import Outputs, Scorer, as_outputs, require
from uqcompress.uncertainty.mc import MCOptions

log = logging.getLogger(__name__)

FITTINGS = ("auto", "split", "crossfit")
EPS = 1e-12


def flip_features(logits: torch.Tensor, temperature: float = 1.0, features: torch.Tensor | None = None,
                  means: torch.Tensor | None = None, scale: float = 1.0, components: torch.Tensor | None = None,
                  center: torch.Tensor | None = None, mc_probs: torch.Tensor | None = None) -> torch.Tensor:
    """The (N, F) float64 inputs of the flip model (see the module docstring), in a fixed column order.

    >>> flip_features(torch.tensor([[2.0, 0.0, 0.0]])).shape   # 6 softmax statistics + 2 x 3 one-hot columns
    torch.Size([1, 12])
    """
    z = logits.double() / temperature
    p = torch.softmax(z, -1)
    top = p.topk(2, dim=-1).values if p.shape[-1] > 1 else torch.cat([p, torch.zeros_like(p)], -1)
    pmax, margin = top[:, 0], top[:, 0] - top[:, 1]
    pred = p.argmax(-1)
    k = p.shape[-1]
    second = p.topk(2, dim=-1).indices[:, 1] if k > 1 else pred
    cols = [pmax, margin, F.neg_entropy(z), torch.logsumexp(z, -1), torch.log1p(-pmax + EPS), torch.log(margin + EPS),
            torch.nn.functional.one_hot(pred, k).double(), torch.nn.functional.one_hot(second, k).double()]
    if means is not None:
        f = features.double()
        d = torch.cdist(f, means.double()) / scale                                  # (N, K)
        two = d.topk(min(2, d.shape[1]), dim=-1, largest=False).values
        gap = two[:, 1] - two[:, 0] if two.shape[1] > 1 else torch.zeros_like(two[:, 0])
        cols += [d.gather(1, pred[:, None])[:, 0], two[:, 0], gap]
        if components is not None and components.shape[1] > 0:
            cols.append((f - center.double()) @ components.double() / scale)
    if mc_probs is not None:
        mc = mc_probs.double()
        cols += [F.mutual_information(mc), mc.gather(2, pred[None, :, None].expand(mc.shape[0], -1, 1))[..., 0].var(0),
                 (mc.argmax(-1) != pred[None]).double().mean(0)]
    return torch.cat([c[:, None] if c.dim() == 1 else c for c in cols], dim=1)


def _fit_logistic(x: np.ndarray, y: np.ndarray, c: float, seed: int) -> tuple[np.ndarray, float]:
    """Weights and bias of an L2 logistic regression on standardised ``x``, mapped back to the raw feature space."""
    from sklearn.linear_model import LogisticRegression

    mu, sd = x.mean(0), x.std(0)
    sd = np.where(sd > 0, sd, 1.0)
    lr = LogisticRegression(C=c, class_weight="balanced", solver="newton-cholesky", max_iter=200, random_state=seed)
    lr.fit((x - mu) / sd, y)
    w = lr.coef_[0] / sd
    return w, float(lr.intercept_[0] - (w * mu).sum())


@SCORERS.register("flip_aware")
class FlipAware(Scorer):
    """Minus the log-odds of "the compressed answer differs from the baseline's", learned on calibration."""

    name = "flip_aware"

    def __init__(self, temperature: bool | float = False, fitting: str = "auto", folds: int = 5,
                 fit_fraction: float = 0.5, C: float = 1.0, features: bool = True, projection: int = 0,
                 mc: bool = False, samples: int = 30, p: float = 0.1, mode: str = "head", seed: int = 0) -> None:
        super().__init__(temperature)
        if fitting not in FITTINGS:
            raise ValueError(f"uncertainty.fitting='{fitting}' is not one of: {', '.join(FITTINGS)}")
        if int(folds) < 2:
            raise ValueError(f"uncertainty.folds={folds} must be >= 2")
        if not 0.0 < float(fit_fraction) < 1.0:
            raise ValueError(f"uncertainty.fit_fraction={fit_fraction} must be in (0, 1)")
        if not float(C) > 0:
            raise ValueError(f"uncertainty.C={C} must be > 0")
        if int(projection) < 0:
            raise ValueError(f"uncertainty.projection={projection} must be >= 0")
        self.fitting, self.folds, self.fit_fraction, self.C = fitting, int(folds), float(fit_fraction), float(C)
        self.use_features, self.projection, self.use_mc = bool(features), int(projection), bool(mc)
        self.seed = int(seed)
        self.mc = MCOptions.from_options({"samples": samples, "p": p, "mode": mode, "seed": seed})
        self.needs = frozenset({"reference"} | ({"features"} if self.use_features else set())
                               | ({"mc"} if self.use_mc else set()))
        self.weight: torch.Tensor | None = None     # (F,) float64, raw feature space
        self.bias: torch.Tensor | None = None       # () float64
        self.means: torch.Tensor | None = None      # (K, D) class means of the fit split's features
        self.scale: torch.Tensor | None = None      # () RMS distance of fit features to their class mean
        self.center: torch.Tensor | None = None     # (D,) and (D, projection): PCA of the fit features
        self.components: torch.Tensor | None = None
        self.fallback = False
        self.selection_rows: torch.Tensor | None = None   # calibration rows the selector may use (split mode)
        self._calibration_scores: torch.Tensor | None = None
        self._resolved = fitting

    # ---- what the pipeline tells it --------------------------------------------------------------------------
    def for_selector(self, selector: Any) -> None:
        """Resolve ``fitting=auto``: ``split`` for a selector that certifies a bound (has ``delta``), else
        ``crossfit``."""
        certifies = hasattr(selector, "delta")
        self._resolved = self.fitting if self.fitting != "auto" else ("split" if certifies else "crossfit")

    # ---- features --------------------------------------------------------------------------------------------
    def _inputs(self, out: Outputs) -> torch.Tensor:
        feats = require(out, "features", self.name) if self.use_features else None
        mc = require(out, "mc_probs", self.name) if self.use_mc else None
        return flip_features(out.logits, self.temperature, feats, self.means,
                             float(self.scale) if self.scale is not None else 1.0, self.components, self.center, mc)

    def _fit_feature_stats(self, fit: Outputs | None, num_classes: int) -> None:
        f = require(fit, "features", self.name).double()
        if fit.labels is None:
            raise ValueError("scorer 'flip_aware' needs labels on the fit split (class means)")
        y = fit.labels.long()
        counts = torch.bincount(y, minlength=num_classes).double()
        sums = torch.zeros(num_classes, f.shape[1], dtype=torch.float64).index_add_(0, y, f)
        means = sums / counts.clamp(min=1)[:, None]
        self.means = torch.where(counts[:, None] > 0, means, f.mean(0, keepdim=True))
        self.scale = ((f - self.means[y]).pow(2).sum(1).mean().sqrt()).clamp(min=EPS)
        self.center = f.mean(0)
        r = min(self.projection, f.shape[1], max(f.shape[0] - 1, 0))
        if r > 0:
            _, _, v = torch.linalg.svd(f - self.center, full_matrices=False)
            self.components = v[:r].T.contiguous()
        else:
            self.components = torch.zeros(f.shape[1], 0, dtype=torch.float64)

    # ---- fit ---------------------------------------------------------------------------------------------------
    def fit(self, calibration: Outputs, fit: Outputs | None = None) -> "FlipAware":
        super().fit(calibration, fit)
        n = len(calibration)
        ref = calibration.reference
        flip = (np.zeros(n, dtype=bool) if ref is None
                else (calibration.logits.argmax(-1) != ref.to(calibration.logits.device)).cpu().numpy())
        self.selection_rows, self._calibration_scores = None, None
        n_flip = int(flip.sum())
        mode = self._resolved if self._resolved != "auto" else "crossfit"
        if mode == "split":
            perm = np.random.default_rng(self.seed).permutation(n)
            cut = int(round(self.fit_fraction * n))
            train, b = np.sort(perm[:cut]), np.sort(perm[cut:])
        else:
            train = np.arange(n)
        if min(int(flip[train].sum()), int((~flip[train]).sum())) < 2:
            self._set_fallback(n_flip, n)
            self._n_flips, self._n_cal = n_flip, n
            return self
        if self.use_features:  # class means: the fit split's, else the calibration rows the scorer is fit on
            if fit is None or fit.features is None:
                rows = torch.from_numpy(train)
                labels = None if calibration.labels is None else calibration.labels[rows]
                fit = Outputs(calibration.logits[rows], labels,
                              features=require(calibration, "features", self.name)[rows])
            self._fit_feature_stats(fit, calibration.logits.shape[1])
        x = self._inputs(calibration).numpy()
        if mode == "split":
            w, b0 = _fit_logistic(x[train], flip[train], self.C, self.seed)
            self.weight, self.bias, self.fallback = torch.from_numpy(w), torch.tensor(b0, dtype=torch.float64), False
            self.selection_rows = torch.from_numpy(b)
        else:
            from sklearn.model_selection import StratifiedKFold

            n_folds = min(self.folds, n_flip, n - n_flip)
            if n_folds < 2:
                self._set_fallback(n_flip, n)
            else:
                oof = np.zeros(n)
                ws, bs = [], []
                for tr, te in StratifiedKFold(n_folds, shuffle=True, random_state=self.seed).split(x, flip):
                    w, b0 = _fit_logistic(x[tr], flip[tr], self.C, self.seed)
                    oof[te] = -(x[te] @ w + b0)
                    ws.append(w)
                    bs.append(b0)
                self.weight = torch.from_numpy(np.mean(ws, 0))
                self.bias = torch.tensor(float(np.mean(bs)), dtype=torch.float64)
                self.fallback = False
                self._calibration_scores = torch.from_numpy(oof)
        self._n_flips, self._n_cal = n_flip, n
        return self

    def _set_fallback(self, n_flip: int, n: int) -> None:
        """Too few flips (or non-flips) to learn from: confidence = max softmax probability, stored as a one-element
        weight (-1 on column 0 of :func:`flip_features`, the max probability)."""
        log.info("uncertainty=flip_aware: %d of %d calibration answers differ from the reference; too few to fit, "
                 "using the max softmax probability", n_flip, n)
        self.weight = torch.tensor([-1.0], dtype=torch.float64)
        self.bias = torch.tensor(0.0, dtype=torch.float64)
        self.fallback = True

    # ---- score -------------------------------------------------------------------------------------------------
    def confidence(self, out: Outputs, probs: torch.Tensor) -> torch.Tensor:
        if self.weight is None:
            raise ValueError("scorer 'flip_aware' is not fit; call fit(calibration, fit) first")
        if self.weight.numel() == 1:  # the fallback: max softmax probability
            return -(-torch.softmax(out.logits.double() / self.temperature, -1).max(-1).values + self.bias.double())
        x = self._inputs(out)
        if x.shape[1] != self.weight.shape[0]:
            raise ValueError(f"scorer 'flip_aware' was fit on {self.weight.shape[0]} inputs per sample but got "
                             f"{x.shape[1]} (another number of classes, feature size or options?)")
        return -(x @ self.weight.double() + self.bias.double())

    def calibration_score(self, out: Outputs | torch.Tensor) -> torch.Tensor:
        """Scores of the calibration split for the selector: out-of-fold scores (crossfit), else :meth:`score`."""
        out = as_outputs(out)
        if self._calibration_scores is not None and len(self._calibration_scores) == len(out):
            return self._calibration_scores.clone()
        return self.score(out)

    # ---- what a deployed predictor stores ----------------------------------------------------------------------
    def config(self) -> dict:
        return {"fitting": self._resolved, "folds": self.folds, "fit_fraction": self.fit_fraction, "C": self.C,
                "features": self.use_features, "projection": self.projection, "mc": self.use_mc,
                "samples": self.mc.samples, "p": self.mc.p, "mode": self.mc.mode, "seed": self.seed}

    def buffers(self) -> dict[str, torch.Tensor]:
        if self.weight is None:
            return {}
        out = {"weight": self.weight, "bias": self.bias}
        if self.means is not None:
            out.update(means=self.means, scale=self.scale, center=self.center, components=self.components)
        return out

    def load_buffers(self, buffers: dict[str, torch.Tensor]) -> "FlipAware":
        super().load_buffers(buffers)
        self.fallback = self.weight is not None and self.weight.numel() == 1
        return self

    def facts(self) -> dict[str, Any]:
        """What the fit found, as flat result keys (``flip_aware_*``)."""
        n = getattr(self, "_n_cal", 0)
        return {"flip_aware_fallback": bool(self.fallback), "flip_aware_fitting": self._resolved,
                "flip_aware_calibration_flip_rate": getattr(self, "_n_flips", 0) / n if n else math.nan,
                "flip_aware_selection_samples": (len(self.selection_rows) if self.selection_rows is not None else n)}
