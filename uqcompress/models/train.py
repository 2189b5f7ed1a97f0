"""A small, deterministic supervised training loop for classifiers (used by ``small_cnn`` and trained heads).

Example:
    >>> import torch
    >>> from uqcompress.models.train import fit_classifier
    >>> x = torch.randn(64, 4); y = (x[:, 0] > 0).long()
    >>> m = fit_classifier(torch.nn.Linear(4, 2), x, y, epochs=20, lr=0.1, seed=0, progress=False)
    >>> float((m(x).argmax(1) == y).float().mean()) > 0.9
    True
"""
from __future__ import annotations

import logging
from typing import Any, Callable

import torch
from torch import nn

from uqcompress.progress import progress_bar

log = logging.getLogger(__name__)


def fit_classifier(
    module: nn.Module,
    x: Any,
    y: torch.Tensor,
    *,
    epochs: int = 5,
    lr: float = 1e-3,
    weight_decay: float = 0.0,
    batch_size: int = 64,
    seed: int = 0,
    prepare: Callable[[Any], Any] | None = None,
    augment: Callable[[torch.Tensor, torch.Generator], torch.Tensor] | None = None,
    progress: bool = True,
    desc: str = "train",
) -> nn.Module:
    """Train ``module`` with AdamW + cosine schedule on (x, y); returns it in eval mode.

    ``x`` is a tensor or a list (sliced per batch); ``prepare`` maps a raw batch to module inputs.
    """
    g = torch.Generator().manual_seed(seed)
    torch.manual_seed(seed)
    n = len(x)
    steps = epochs * ((n + batch_size - 1) // batch_size)
    opt = torch.optim.AdamW([p for p in module.parameters() if p.requires_grad], lr=lr, weight_decay=weight_decay)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=lr, total_steps=max(steps, 1), pct_start=0.15)
    loss_fn = nn.CrossEntropyLoss()
    module.train()
    bar = progress_bar(total=steps, desc=desc, enabled=progress)
    for epoch in range(epochs):
        perm = torch.randperm(n, generator=g)
        total = 0.0
        for i in range(0, n, batch_size):
            idx = perm[i : i + batch_size]
            xb = x[idx] if isinstance(x, torch.Tensor) else [x[j] for j in idx.tolist()]
            if augment is not None:
                xb = augment(xb, g)
            inputs = prepare(xb) if prepare else xb
            out = module(**inputs) if isinstance(inputs, dict) else module(inputs)
            out = getattr(out, "logits", out)
            loss = loss_fn(out, y[idx])
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            sched.step()
            total += loss.item() * len(idx)
            bar.update(1)
        log.debug("%s epoch %d loss %.4f", desc, epoch + 1, total / n)
    bar.close()
    return module.eval()
