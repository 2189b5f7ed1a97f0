"""``quant=int8``: static post-training int8 quantization of convs and linears with torch.ao FX (x86 backend).

Observers are calibrated on the calibration split; Conv-BN-ReLU are fused first. A model FX cannot trace fails
with one line naming the model, the scheme and what to use instead.

Example:
    >>> import torch
    >>> from uqcompress.models.small_cnn import SmallCNN
    >>> from uqcompress.models.base import ModelBundle
    >>> from uqcompress.compress import compress
    >>> b = ModelBundle(SmallCNN().eval(), "small_cnn", "x", "image", 10)
    >>> q = compress(b, {"name": "int8"}, torch.rand(32, 1, 28, 28))
    >>> q.logits(torch.rand(2, 1, 28, 28)).shape
    torch.Size([2, 10])
"""
from __future__ import annotations

import copy
import logging
import warnings

import torch

from uqcompress.compress import SCHEMES, CompressContext, scheme_fingerprint
from uqcompress.models.base import ModelBundle, call_module

log = logging.getLogger(__name__)


@SCHEMES.register("int8")
def int8_static(bundle: ModelBundle, cfg: dict, calib_x, ctx: CompressContext) -> ModelBundle:
    from torch.ao.quantization import get_default_qconfig_mapping
    from torch.ao.quantization.quantize_fx import convert_fx, prepare_fx

    backend = cfg.get("backend", "x86")
    n_calib = int(cfg.get("calibration_samples", 512))
    torch.backends.quantized.engine = backend
    model = copy.deepcopy(bundle.module).eval()
    example = bundle.prepare(calib_x[:2])
    example_args = (example,) if not isinstance(example, dict) else tuple(example.values())
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            prepared = prepare_fx(model, get_default_qconfig_mapping(backend), example_args)
        except Exception as e:
            raise ValueError(
                f"model '{bundle.name}' cannot be traced for quant=int8 (torch.ao FX: {type(e).__name__}); "
                "use quant=int8_dynamic or quant=int8_weight_only instead"
            ) from e
        calib = calib_x[:n_calib]
        with torch.inference_mode():
            for i in range(0, len(calib), ctx.batch_size):
                call_module(prepared, bundle.prepare(calib[i : i + ctx.batch_size]))
        quantized = convert_fx(prepared)
    log.info("int8 static (%s): calibrated on %d samples", backend, len(calib))
    return bundle.with_module(
        quantized, scheme_fingerprint(bundle, cfg, calib), scheme="int8", bits=8, simulated=False,
        backend=backend, calibration_samples=len(calib),
    )
