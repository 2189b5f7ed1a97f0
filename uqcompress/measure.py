"""Measured cost of a model: serialized size, bits and sparsity (latency: :meth:`uqcompress.runner.Runner.latency`).

Example:
    >>> import torch
    >>> from uqcompress.measure import state_dict_bytes, weight_sparsity
    >>> state_dict_bytes(torch.nn.Linear(10, 10)) > 440   # 110 float32 values + zip/pickle framing
    True
    >>> lin = torch.nn.Linear(4, 4)
    >>> with torch.no_grad(): _ = lin.weight[:2].zero_()
    >>> weight_sparsity(lin)
    0.5
"""
from __future__ import annotations

import io

import torch
from torch import nn


def state_dict_bytes(module: nn.Module) -> int:
    """Bytes of ``torch.save(module.state_dict())``: what the weights cost on disk, packed params included."""
    buf = io.BytesIO()
    torch.save(module.state_dict(), buf)
    return buf.getbuffer().nbytes


def dense_weight(layer: nn.Module) -> torch.Tensor | None:
    """A layer's weight as a plain float tensor, whatever its storage (float, torch.ao quantized/packed, torchao
    tensor subclass, brevitas fake-quantized value); None for a layer without a single ``weight`` (e.g. LSTM)."""
    quant_weight = getattr(layer, "quant_weight", None)  # brevitas: the weight the layer actually computes with
    if callable(quant_weight):
        try:
            with torch.no_grad():
                v = quant_weight()
            return getattr(v, "value", v).detach().float()
        except Exception:
            pass
    w = getattr(layer, "weight", None)
    if w is None:
        inner = getattr(layer, "module", None)  # torch.ao QuantWrapper (quant=int8 per layer): the wrapped layer
        return dense_weight(inner) if isinstance(inner, nn.Module) and hasattr(layer, "dequant") else None
    if callable(w) and not isinstance(w, torch.Tensor):  # torch.ao quantized modules: weight() unpacks
        try:
            w = w()
        except Exception:
            return None
    if not isinstance(w, torch.Tensor):
        return None
    w = w.detach()
    if w.is_quantized or type(w) not in (torch.Tensor, nn.Parameter):  # qint8 / torchao subclasses
        w = w.dequantize()
    return w.float()


def weight_sparsity(module: nn.Module, names: list[str] | None = None) -> float:
    """Share of exactly-zero weight values over the layers ``names`` (default: every weight matrix / conv kernel,
    i.e. layers whose weight has >= 2 dims, embeddings excluded).

    Biases and norm scales are not counted. NaN when none of the layers has a readable weight.
    """
    if names is not None:
        layers = [module.get_submodule(n) for n in names]
    else:
        layers = [m for m in module.modules() if not isinstance(m, nn.Embedding)]
    zeros = total = 0
    for layer in layers:
        w = dense_weight(layer)
        if w is None or (names is None and w.dim() < 2):
            continue
        zeros += int((w == 0).sum())
        total += w.numel()
    return zeros / total if total else float("nan")


def weight_bits(module: nn.Module) -> int:
    """Bits per value of the module's floating-point parameters (32 for float32, 16 for half); the dtype with the
    most elements wins."""
    counts: dict[torch.dtype, int] = {}
    for p in module.parameters():
        if p.is_floating_point():
            counts[p.dtype] = counts.get(p.dtype, 0) + p.numel()
    if not counts:
        return 32
    return torch.finfo(max(counts, key=counts.get)).bits
