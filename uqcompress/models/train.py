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
    lengths: Any = None,
) -> nn.Module:
    """Train ``module`` with AdamW + cosine schedule on (x, y); returns it in eval mode.

    ``x`` is a tensor or a list (sliced per batch); ``prepare`` maps a raw batch to module inputs. ``lengths`` (one
    per sample, e.g. token counts) makes each batch hold samples of similar length: less padding, same randomness
    of which samples meet in an epoch up to the bucket (see :func:`bucketed_batches`).
    """
    if isinstance(epochs, bool) or int(epochs) != epochs or epochs < 0:
        raise ValueError(f"epochs={epochs!r} must be a whole number >= 0")
    if isinstance(batch_size, bool) or int(batch_size) != batch_size or batch_size < 1:
        raise ValueError(f"batch_size={batch_size!r} must be a whole number >= 1")
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
        if lengths is not None:
            batches = bucketed_batches(perm, lengths, batch_size, g)
        else:
            batches = [perm[i : i + batch_size] for i in range(0, n, batch_size)]
        total = 0.0
        for idx in batches:
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


def bucketed_batches(perm: torch.Tensor, lengths: Any, batch_size: int, g: torch.Generator,
                     bucket: int = 32) -> list[torch.Tensor]:
    """Cut a random permutation into chunks of ``bucket`` batches, sort each chunk by length, batch it, and shuffle
    the batches: every batch holds texts of similar length (little padding), the epoch order stays random."""
    lengths = torch.as_tensor(lengths)
    batches: list[torch.Tensor] = []
    chunk = batch_size * bucket
    for i in range(0, len(perm), chunk):
        part = perm[i : i + chunk]
        part = part[torch.argsort(lengths[part], stable=True)]
        batches.extend(part[j : j + batch_size] for j in range(0, len(part), batch_size))
    order = torch.randperm(len(batches), generator=g).tolist()
    return [batches[k] for k in order]
