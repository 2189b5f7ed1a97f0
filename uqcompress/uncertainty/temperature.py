"""Temperature scaling (Guo et al. 2017): one scalar τ, logits / τ, fit by minimising NLL on calibration logits.

The NLL is convex in β = 1/τ, hence unimodal in log τ: a bounded Brent search on log τ (float64, deterministic)
finds the global minimum in a few dozen evaluations and respects the bounds without clamping an optimizer's step.

Example:
    >>> import torch
    >>> from uqcompress.uncertainty.temperature import fit_temperature
    >>> _ = torch.manual_seed(0); y = torch.randint(0, 3, (500,)); z = 5 * torch.nn.functional.one_hot(y, 3).float()
    >>> fit_temperature(z, y) < 1.0   # already over-correct logits => sharpen, never a crash
    True
"""
from __future__ import annotations

import math

import numpy as np
import torch


def temperature_nll(logits: torch.Tensor | np.ndarray, labels: torch.Tensor | np.ndarray, temperature: float) -> float:
    """Mean negative log-likelihood (nats) of softmax(logits / temperature) at ``labels``."""
    z = torch.as_tensor(logits).double() / temperature
    return float(torch.nn.functional.cross_entropy(z, torch.as_tensor(labels).long()))


def fit_temperature(logits: torch.Tensor, labels: torch.Tensor, bounds: tuple[float, float] = (0.05, 20.0)) -> float:
    """τ in ``bounds`` minimising the mean NLL of softmax(logits / τ)."""
    from scipy.optimize import minimize_scalar

    if labels is None:
        raise ValueError("temperature scaling needs labels on the calibration split")
    if len(labels) == 0:
        raise ValueError("cannot fit a temperature on an empty calibration split")
    z = torch.as_tensor(logits).detach().double().cpu().numpy()
    y = torch.as_tensor(labels).long().cpu().numpy()
    z_y = z[np.arange(len(y)), y]

    def nll(log_t: float) -> float:
        s = z * math.exp(-log_t)
        m = s.max(1)
        return float(np.mean(m + np.log(np.exp(s - m[:, None]).sum(1)) - z_y * math.exp(-log_t)))

    lo, hi = (math.log(b) for b in bounds)
    res = minimize_scalar(nll, bounds=(lo, hi), method="bounded", options={"xatol": 1e-9, "maxiter": 500})
    return float(min(max(math.exp(res.x), bounds[0]), bounds[1]))
