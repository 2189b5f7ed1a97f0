"""Temperature scaling (Guo et al. 2017): one scalar τ, logits / τ, fit by minimising NLL on calibration logits.

Example:
    >>> import torch
    >>> from uqcompress.uncertainty.temperature import fit_temperature
    >>> _ = torch.manual_seed(0); y = torch.randint(0, 3, (500,)); z = 5 * torch.nn.functional.one_hot(y, 3).float()
    >>> fit_temperature(z, y) < 1.0   # already over-correct logits => sharpen, never a crash
    True
"""
from __future__ import annotations

import torch


def fit_temperature(logits: torch.Tensor, labels: torch.Tensor, bounds: tuple[float, float] = (0.05, 20.0)) -> float:
    """τ minimising mean NLL of softmax(logits / τ), searched on log τ (bounded, float64, deterministic)."""
    if labels is None:
        raise ValueError("temperature scaling needs labels on the calibration split")
    z = logits.double()
    y = labels.long()

    def nll(log_t: torch.Tensor) -> torch.Tensor:
        return torch.nn.functional.cross_entropy(z / log_t.exp(), y)

    log_t = torch.zeros((), dtype=torch.float64, requires_grad=True)
    opt = torch.optim.LBFGS([log_t], lr=0.5, max_iter=200, line_search_fn="strong_wolfe", tolerance_grad=1e-10,
                            tolerance_change=1e-12)

    def closure() -> torch.Tensor:
        opt.zero_grad()
        loss = nll(log_t)
        loss.backward()
        return loss

    opt.step(closure)
    lo, hi = bounds
    return float(min(max(log_t.detach().exp().item(), lo), hi))
