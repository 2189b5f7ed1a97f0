"""Pure confidence functions over tensors: no model, no state. **Higher = more confident**, for every function.

Scorer classes (``softmax_scores.py``, ``mc_dropout.py``, ``feature_scores.py``) are thin shells around these.
All return float64 (N,).

Example:
    >>> import torch
    >>> from uqcompress.uncertainty import functional as F
    >>> z = torch.tensor([[4.0, 0.0, 0.0], [0.0, 0.0, 0.0]])
    >>> [bool(a > b) for a, b in [F.msp(z), F.neg_entropy(z), F.margin(z), F.neg_energy(z)]]
    [True, True, True, True]
"""
from __future__ import annotations

import torch


def _logp(logits: torch.Tensor, temperature: float = 1.0) -> torch.Tensor:
    return torch.log_softmax(logits.double() / temperature, dim=-1)


def msp(logits: torch.Tensor, temperature: float = 1.0) -> torch.Tensor:
    """Maximum softmax probability, max_k p_k (Hendrycks & Gimpel 2017)."""
    return _logp(logits, temperature).max(dim=-1).values.exp()


def entropy_from_probs(probs: torch.Tensor) -> torch.Tensor:
    """Shannon entropy H[p] = -Σ p log p in nats over the last dim (0·log 0 = 0)."""
    p = probs.double()
    return -(torch.special.xlogy(p, p)).sum(-1)


def neg_entropy(logits: torch.Tensor, temperature: float = 1.0) -> torch.Tensor:
    """Negative predictive entropy, -H[softmax(z/τ)], nats (computed from log-softmax: no log 0)."""
    lp = _logp(logits, temperature)
    return (lp.exp() * lp).sum(-1)


def margin(logits: torch.Tensor, temperature: float = 1.0) -> torch.Tensor:
    """Top-1 minus top-2 softmax probability, p_(1) - p_(2), in [0, 1]."""
    top = _logp(logits, temperature).exp().topk(2, dim=-1).values
    return top[:, 0] - top[:, 1]


def neg_energy(logits: torch.Tensor, energy_temperature: float = 1.0) -> torch.Tensor:
    """Negative free energy T·logsumexp(z/T) (Liu et al. 2020), unbounded; higher = more in-distribution."""
    t = float(energy_temperature)
    return t * torch.logsumexp(logits.double() / t, dim=-1)


def mc_mean(mc_probs: torch.Tensor) -> torch.Tensor:
    """Predictive distribution of T stochastic passes: mean over the first dim, (T, N, K) -> (N, K)."""
    return mc_probs.double().mean(0)


def mutual_information(mc_probs: torch.Tensor) -> torch.Tensor:
    """BALD mutual information H[mean_t p_t] - mean_t H[p_t] (nats, >= 0) from (T, N, K) probabilities."""
    mi = entropy_from_probs(mc_mean(mc_probs)) - entropy_from_probs(mc_probs).mean(0)
    return mi.clamp_min(0.0)  # tiny negative values are rounding


def rescale_probs(probs: torch.Tensor, temperature: float) -> torch.Tensor:
    """softmax(log p / τ): temperature scaling applied to probabilities (equals softmax(z/τ) for p = softmax(z))."""
    if temperature == 1.0:
        return probs.double()
    return torch.softmax(probs.double().clamp_min(1e-300).log() / temperature, dim=-1)


def class_gaussians(features: torch.Tensor, labels: torch.Tensor, num_classes: int | None = None,
                    shrinkage: float = 1e-6) -> tuple[torch.Tensor, torch.Tensor]:
    """Class means (K, D) and the precision (D, D) of the shared (pooled within-class) covariance.

    ``shrinkage`` adds ``shrinkage * mean(diag)`` to the diagonal so that D > N or collinear features still invert.
    Classes absent from ``labels`` get a mean of NaN and are ignored by :func:`mahalanobis`.
    """
    f = features.double()
    y = labels.long()
    k = int(num_classes if num_classes is not None else int(y.max()) + 1)
    means = torch.full((k, f.shape[1]), float("nan"), dtype=torch.float64)
    centered = torch.empty_like(f)
    for c in range(k):
        idx = y == c
        if idx.any():
            means[c] = f[idx].mean(0)
            centered[idx] = f[idx] - means[c]
    cov = centered.T @ centered / max(len(f), 1)
    cov = cov + torch.eye(cov.shape[0], dtype=cov.dtype) * shrinkage * cov.diagonal().mean().clamp_min(1e-12)
    return means, torch.linalg.pinv(cov, hermitian=True)


def mahalanobis(features: torch.Tensor, means: torch.Tensor, precision: torch.Tensor,
                chunk: int = 4096) -> torch.Tensor:
    """Confidence = -min_k (f - μ_k)ᵀ Σ⁻¹ (f - μ_k), the negative squared Mahalanobis distance to the nearest class
    (Lee et al. 2018)."""
    mu = means.double()
    mu = mu[~torch.isnan(mu).any(1)]
    prec = precision.double()
    mu_p = mu @ prec                                   # (K, D)
    mu_term = (mu_p * mu).sum(1)                       # μᵀ P μ, (K,)
    out = []
    for i in range(0, len(features), chunk):
        f = features[i : i + chunk].double()
        d = (f @ prec * f).sum(1, keepdim=True) - 2 * f @ mu_p.T + mu_term  # (n, K)
        out.append(-d.clamp_min(0).min(1).values)
    return torch.cat(out) if out else torch.empty(0, dtype=torch.float64)


def normalize(features: torch.Tensor) -> torch.Tensor:
    """Rows scaled to unit L2 norm (float32; zero rows stay zero)."""
    return torch.nn.functional.normalize(features.float(), dim=-1)


def knn(features: torch.Tensor, bank: torch.Tensor, k: int = 10, chunk: int = 1024) -> torch.Tensor:
    """Cosine similarity to the k-th nearest row of ``bank`` (Sun et al. 2022, monotone in their -‖z - z_(k)‖).

    ``bank`` must already be L2-normalised (:func:`normalize`); ``features`` are normalised here.
    """
    if not 1 <= k <= len(bank):
        raise ValueError(f"knn k={k} must be in [1, {len(bank)}] (the number of fit-split features)")
    out = []
    for i in range(0, len(features), chunk):
        sim = normalize(features[i : i + chunk]) @ bank.float().T
        out.append(sim.topk(k, dim=1).values[:, -1].double())
    return torch.cat(out) if out else torch.empty(0, dtype=torch.float64)


def mc_interval_accept(mc_probs: torch.Tensor, conf_factor: float = 1.0) -> torch.Tensor:
    """Singhal & Srinivasan (arXiv 2403.01076): per-class interval mean ± Z·std of T softmax passes; True where the
    top class's lower bound exceeds every other class's upper bound (predict), False otherwise (abstain)."""
    p = mc_probs.double()
    mean = p.mean(0)
    std = p.std(0, unbiased=False) if p.shape[0] > 1 else torch.zeros_like(mean)
    top = mean.argmax(-1, keepdim=True)
    lower = (mean - conf_factor * std).gather(-1, top).squeeze(-1)
    upper = (mean + conf_factor * std).scatter(-1, top, float("-inf"))
    return lower > upper.max(-1).values
