"""``quant=amp``: automatic mixed precision with ``torch.autocast`` (weights stay float32).

The module is not changed; the runner computes it under ``torch.autocast(device, dtype=quant.dtype)``, so matmuls
and convolutions run in ``bfloat16`` (default) or ``float16`` and numerically sensitive ops (softmax, norms, losses)
in float32, as PyTorch's autocast op lists decide. This is how half precision is usually deployed on GPUs; unlike
``quant=fp16``/``bf16`` the stored model keeps its float32 weights (no size gain). On a CPU, ``bfloat16`` autocast
runs oneDNN bf16 kernels where the CPU has them; ``float16`` autocast on CPU is supported by recent PyTorch but rarely
fast.

Example:
    >>> import torch
    >>> from uqcompress.models.base import ModelBundle
    >>> from uqcompress.compress import compress
    >>> from uqcompress.runner import Runner
    >>> b = ModelBundle(torch.nn.Linear(64, 3), "lin", "x", "image", 3)
    >>> q = compress(b, {"name": "amp"}, None)
    >>> q.info["autocast"], q.module.weight.dtype, Runner(progress=False).logits(q, torch.randn(4, 64)).dtype
    ('bfloat16', torch.float32, torch.float32)
"""
from __future__ import annotations

import copy

from uqcompress.compress import SCHEMES, CompressContext, scheme_fingerprint
from uqcompress.compress._targets import resolve
from uqcompress.models.base import ModelBundle, module_device

DTYPES = ("bfloat16", "float16")


def _dtype(cfg: dict) -> str:
    dtype = resolve("amp", cfg, {"dtype": "bfloat16"})["dtype"]
    if dtype not in DTYPES:
        raise ValueError(f"quant.dtype='{dtype}' is not one of: {', '.join(DTYPES)}")
    return dtype


@SCHEMES.register("amp", autocast=_dtype, options=("dtype",))
def amp(bundle: ModelBundle, cfg: dict, calib_x, ctx: CompressContext) -> ModelBundle:
    dtype = _dtype(cfg)
    device = module_device(bundle.module).type
    return bundle.with_module(
        copy.deepcopy(bundle.module).eval(), scheme_fingerprint(bundle, {**cfg, "dtype": dtype}), scheme="amp",
        bits=16, act_bits=16, simulated=False, backend=f"torch.autocast-{device}",
        note=f"torch.autocast {dtype} on {device}: matmuls/convs in {dtype}, weights and sensitive ops float32",
    )

