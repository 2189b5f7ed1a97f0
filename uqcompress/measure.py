"""Measured cost of a model: serialized size and CPU latency.

Example:
    >>> import torch
    >>> from uqcompress.measure import state_dict_bytes
    >>> state_dict_bytes(torch.nn.Linear(10, 10)) > 440   # 110 float32 values + zip/pickle framing
    True
"""
from __future__ import annotations

import io
import statistics
import time
from typing import Any

import torch
from torch import nn

from uqcompress.models.base import ModelBundle, call_module


def state_dict_bytes(module: nn.Module) -> int:
    """Bytes of ``torch.save(module.state_dict())``: what the weights cost on disk, packed params included."""
    buf = io.BytesIO()
    torch.save(module.state_dict(), buf)
    return buf.getbuffer().nbytes


def latency_ms_per_sample(bundle: ModelBundle, x: Any, batch_size: int = 32, repeats: int = 10,
                          warmup: int = 2) -> dict[str, float]:
    """Median wall time per sample (ms) over ``repeats`` timed batches after ``warmup`` untimed ones.

    Returns ``{"latency_ms_per_sample", "latency_batch_size", "latency_threads"}``.
    """
    batch = x[:batch_size]
    n = len(batch)
    inputs = bundle.prepare(batch)
    module = bundle.module.eval()
    times = []
    with torch.inference_mode():
        for i in range(warmup + repeats):
            t0 = time.perf_counter()
            call_module(module, inputs)
            if i >= warmup:
                times.append(time.perf_counter() - t0)
    return {
        "latency_ms_per_sample": 1000.0 * statistics.median(times) / n,
        "latency_batch_size": n,
        "latency_threads": torch.get_num_threads(),
    }
