"""Batched inference with an on-disk cache: logits (and penultimate features) per (model, data split, settings).

Example:
    >>> import torch
    >>> from uqcompress.models.base import ModelBundle
    >>> from uqcompress.inference import predict_logits
    >>> m = ModelBundle(torch.nn.Linear(4, 3), "lin", "x", "image", 3)
    >>> predict_logits(m, torch.zeros(10, 4), batch_size=4, progress=False).shape
    torch.Size([10, 3])
"""
from __future__ import annotations

import logging
from typing import Any

import torch

from uqcompress.cache import cached, fingerprint
from uqcompress.models.base import ModelBundle, call_module
from uqcompress.progress import progress_bar

log = logging.getLogger(__name__)


def _batches(x: Any, batch_size: int):
    for i in range(0, len(x), batch_size):
        yield x[i : i + batch_size]


def _length_order(x: Any) -> list[int] | None:
    """For a list of texts, the indices sorted by length: batches of similar length pad (and cost) far less."""
    if isinstance(x, (list, tuple)) and x and isinstance(x[0], str):
        return sorted(range(len(x)), key=lambda i: len(x[i]))
    return None


def predict_logits(bundle: ModelBundle, x: Any, batch_size: int = 256, progress: bool = True,
                   desc: str = "infer") -> torch.Tensor:
    """Logits (N, K) as float32 on CPU, in eval mode, without grad."""
    bundle.module.eval()
    outs = []
    order = _length_order(x)
    xs = [x[i] for i in order] if order is not None else x
    with torch.inference_mode(), progress_bar(total=len(x), desc=desc, enabled=progress) as bar:
        for xb in _batches(xs, batch_size):
            outs.append(call_module(bundle.module, bundle.prepare(xb)).float().cpu())
            bar.update(len(xb))
    if not outs:
        raise ValueError(f"no inputs to run model '{bundle.name}' on (empty split)")
    logits = torch.cat(outs)
    if order is not None:  # back to the input order
        logits = logits[torch.as_tensor(order).argsort()]
    if not torch.isfinite(logits).all():
        bad = int((~torch.isfinite(logits)).any(1).nonzero()[0])
        raise ValueError(f"model '{bundle.name}' produced NaN/inf logits (first at sample {bad})")
    return logits


def cached_logits(bundle: ModelBundle, split_name: str, x: Any, *, batch_size: int = 256, progress: bool = True,
                  split_key: str | None = None) -> torch.Tensor:
    """:func:`predict_logits`, cached on disk by (model fingerprint, data fingerprint).

    Each real pass is logged in the cache's ``events.jsonl`` (kind ``logits``), so a sweep can show that the
    baseline ran once and each scheme once.
    """
    split_key = split_key or fingerprint(x if isinstance(x, torch.Tensor) else list(x))
    key = fingerprint("logits", bundle.fingerprint, split_key)

    def compute() -> torch.Tensor:
        log.info("inference: %s on %s (%d samples)", bundle.label, split_name, len(x))
        return predict_logits(bundle, x, batch_size, progress, desc=f"{bundle.label}:{split_name}")

    return cached("logits", key, compute, log=log.debug, model=bundle.label, split=split_name)


def collect_outputs(bundle: ModelBundle, split_name: str, split, needs: frozenset[str] = frozenset(),
                    options: dict | None = None, *, batch_size: int = 256, progress: bool = True):
    """Everything the scorer/selector asked for on one split: logits always, MC passes / features on demand."""
    from uqcompress.uncertainty.base import Outputs

    split_key = split.fingerprint()
    out = Outputs(cached_logits(bundle, split_name, split.x, batch_size=batch_size, progress=progress,
                                split_key=split_key), split.y)
    unknown = set(needs) - {"mc", "features", "reference"}
    if unknown:
        raise ValueError(f"unknown output kind(s) {sorted(unknown)} requested; known: mc, features, reference")
    if set(needs) & {"mc", "features"}:  # "reference" (another model's labels) is filled in by the pipeline
        from uqcompress.uncertainty import extras  # MC-dropout passes and penultimate features

        extras.collect(bundle, split_name, split, out, needs, options or {}, batch_size=batch_size,
                       progress=progress, split_key=split_key)
    return out
