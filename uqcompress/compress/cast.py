"""``quant=fp16`` / ``quant=bf16``: weights, buffers and activations in half precision.

The module is cast to the dtype and wrapped by forward hooks (no renamed submodules, so ``bundle.head`` still
resolves): floating-point inputs are cast to the dtype on the way in, logits back to float32 on the way out.
Integer inputs (token ids, masks) pass untouched. On a CPU without native half-precision GEMM the kernels compute
internally in float32 (upcast), so CPU latency is not what a GPU would show: ``info['note']`` says which.

Example:
    >>> import torch
    >>> from uqcompress.models.base import ModelBundle
    >>> from uqcompress.compress import compress
    >>> b = ModelBundle(torch.nn.Linear(4, 3), "lin", "x", "image", 3)
    >>> h = compress(b, {"name": "bf16"}, None)
    >>> h.module.weight.dtype, h.logits(torch.zeros(2, 4)).dtype
    (torch.bfloat16, torch.float32)
"""
from __future__ import annotations

import copy
from functools import partial
from typing import Any

import torch
from torch import nn

from uqcompress.compress import SCHEMES, CompressContext, scheme_fingerprint
from uqcompress.compress._targets import resolve
from uqcompress.models.base import ModelBundle, module_device

DTYPES = {"fp16": torch.float16, "bf16": torch.bfloat16}


def _cast(x: Any, dtype: torch.dtype) -> Any:
    if isinstance(x, torch.Tensor):
        return x.to(dtype) if x.is_floating_point() else x
    if isinstance(x, dict):
        return {k: _cast(v, dtype) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return type(x)(_cast(v, dtype) for v in x)
    return x


def _cast_inputs(dtype: torch.dtype, module: nn.Module, args: tuple, kwargs: dict) -> tuple[tuple, dict]:
    return _cast(args, dtype), _cast(kwargs, dtype)


def _logits_to_float(module: nn.Module, args: tuple, output: Any) -> Any:
    if isinstance(output, torch.Tensor):
        return output.float()
    if hasattr(output, "logits") and isinstance(output.logits, torch.Tensor):  # HF ModelOutput
        output.logits = output.logits.float()
    return output


def cast_module(module: nn.Module, dtype: torch.dtype) -> nn.Module:
    """A copy of ``module`` in ``dtype`` whose forward takes and returns float32 (hooks cast at the boundary)."""
    model = copy.deepcopy(module).to(dtype).eval()
    model.register_forward_pre_hook(partial(_cast_inputs, dtype), with_kwargs=True)
    model.register_forward_hook(_logits_to_float)
    return model


def kernel_note(dtype: torch.dtype, device: str) -> str:
    """What runs where: native half-precision kernels or float32 upcast inside the CPU kernels."""
    name = "fp16" if dtype == torch.float16 else "bf16"
    if device == "cuda":
        return f"{name} weights and activations; native CUDA {name} kernels"
    native = (torch.ops.mkldnn._is_mkldnn_fp16_supported() if dtype == torch.float16
              else torch.ops.mkldnn._is_mkldnn_bf16_supported())
    if native:
        return f"{name} weights and activations; oneDNN {name} kernels on this CPU (fp32 accumulation)"
    return (f"{name} weights and activations; this CPU has no native {name} GEMM, so CPU kernels upcast to fp32 "
            "internally (numerics are half precision, latency is not representative)")


def _half(name: str, bundle: ModelBundle, cfg: dict, calib_x, ctx: CompressContext) -> ModelBundle:
    cfg = resolve(name, cfg, {})
    dtype = DTYPES[name]
    model = cast_module(bundle.module, dtype)
    device = module_device(model).type
    return bundle.with_module(  # the key holds the device: CPU and CUDA half kernels round differently
        model, scheme_fingerprint(bundle, cfg), scheme=name, bits=16, act_bits=16,
        simulated=False, backend=f"torch-{device}", note=kernel_note(dtype, device),
    )


SCHEMES.register("fp16", partial(_half, "fp16"), options=())
SCHEMES.register("bf16", partial(_half, "bf16"), options=())
