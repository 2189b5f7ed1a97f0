"""Static int8 layer by layer (torch.ao eager mode), for models FX cannot trace (Hugging Face transformers).

Every Conv/Linear is wrapped as QuantStub -> layer -> DeQuantStub (``torch.ao.quantization.QuantWrapper``): its input
and output scales are calibrated on the calibration split and it runs as a quantized int8 kernel (per-channel int8
weights, int8 activations), while everything between the layers (LayerNorm, softmax, GELU, residual adds, pooling)
stays fp32. ``quant=int8`` uses it when FX cannot trace a model (``quant.mode=auto``) or when asked
(``quant.mode=per_layer``). Unlike FX it cannot fuse Conv-BN-ReLU or keep int8 between layers, so each layer pays a
quantize / dequantize of its activations.

Example:
    >>> import torch
    >>> from torch.ao.quantization import convert
    >>> from uqcompress.compress.int8_per_layer import prepare_per_layer
    >>> m = prepare_per_layer(torch.nn.Sequential(torch.nn.Linear(8, 4), torch.nn.GELU()), "x86")
    >>> _ = m(torch.randn(16, 8))                       # calibrate
    >>> type(convert(m)[0].module).__name__
    'Linear'
"""
from __future__ import annotations

import torch
from torch import nn

QUANT_TYPES = (nn.Linear, nn.Conv1d, nn.Conv2d, nn.Conv3d)


def prepare_per_layer(model: nn.Module, backend: str = "x86", skip: list[str] | None = None) -> nn.Module:
    """Wrap every Conv/Linear of ``model`` but those named in ``skip`` (in place) with quant/dequant stubs and
    attach int8 observers."""
    from torch.ao.quantization import QuantWrapper, get_default_qconfig, prepare

    keep_fp32 = set(skip or ())
    names = [n for n, m in model.named_modules() if type(m) in QUANT_TYPES and n not in keep_fp32]
    if not names:
        raise ValueError("static int8 per layer found no Conv or Linear layer to quantize")
    torch.backends.quantized.engine = backend
    qconfig = get_default_qconfig(backend)
    for name in names:
        wrapper = QuantWrapper(model.get_submodule(name))
        wrapper.qconfig = qconfig
        model.set_submodule(name, wrapper)
    return prepare(model.eval(), inplace=True)


def convert_per_layer(prepared: nn.Module) -> nn.Module:
    """Swap the observed layers of :func:`prepare_per_layer` for quantized int8 modules."""
    from torch.ao.quantization import convert

    return convert(prepared.eval(), inplace=True)
