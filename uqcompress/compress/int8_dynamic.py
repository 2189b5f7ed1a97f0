"""``quant=int8_dynamic``: dynamic int8 for Linear (and LSTM/GRU) layers with torch.ao ``quantize_dynamic``.

Weights are stored as int8 (per-channel by default); activations are quantized on the fly per batch, so no
calibration is needed. Convolutions stay float32 (say so in ``info['note']`` when the model has any). Works on any
module without tracing, transformers included; ``quant.target`` (all | attention | ffn) picks the Linear layers.
CPU only (fbgemm/x86 kernels).

Example:
    >>> import torch
    >>> from uqcompress.models.base import ModelBundle
    >>> from uqcompress.compress import compress
    >>> net = torch.nn.Sequential(torch.nn.Linear(8, 16), torch.nn.ReLU(), torch.nn.Linear(16, 3))
    >>> q = compress(ModelBundle(net, "mlp", "x", "image", 3, head="2"), {"name": "int8_dynamic"}, None)
    >>> q.module[0]._get_name(), q.logits(torch.zeros(2, 8)).shape
    ('DynamicQuantizedLinear', torch.Size([2, 3]))
"""
from __future__ import annotations

import copy
import warnings

import torch
from torch import nn

from uqcompress.compress import SCHEMES, CompressContext, scheme_fingerprint
from uqcompress.compress._targets import resolve, select_layers
from uqcompress.models.base import ModelBundle, module_device

DEFAULTS = {"backend": "x86", "per_channel": True, "target": "all", "include_head": True}
DYNAMIC_TYPES = (nn.Linear, nn.LSTM, nn.GRU)


@SCHEMES.register("int8_dynamic", devices=("cpu",), options=tuple(DEFAULTS))
def int8_dynamic(bundle: ModelBundle, cfg: dict, calib_x, ctx: CompressContext) -> ModelBundle:
    from torch.ao.quantization import default_dynamic_qconfig, per_channel_dynamic_qconfig, quantize_dynamic

    cfg = resolve("int8_dynamic", cfg, DEFAULTS)
    if module_device(bundle.module).type != "cpu":
        raise ValueError(f"model '{bundle.name}' is on {module_device(bundle.module)} but quant=int8_dynamic runs on "
                         "CPU only; use quant=int8_weight_only (torchao) on GPU")
    if cfg["backend"] not in torch.backends.quantized.supported_engines:
        raise ValueError(f"quant.backend='{cfg['backend']}' is not one of: "
                         f"{', '.join(e for e in torch.backends.quantized.supported_engines if e != 'none')}")
    torch.backends.quantized.engine = cfg["backend"]
    model = copy.deepcopy(bundle.module).eval()
    names = select_layers(bundle, model, cfg, DYNAMIC_TYPES, "int8_dynamic")
    linear_qconfig = per_channel_dynamic_qconfig if cfg["per_channel"] else default_dynamic_qconfig
    spec = {n: (linear_qconfig if isinstance(model.get_submodule(n), nn.Linear) else default_dynamic_qconfig)
            for n in names}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        quantized = quantize_dynamic(model, spec, dtype=torch.qint8)
    done = [n for n in names if not isinstance(quantized.get_submodule(n), DYNAMIC_TYPES)]
    if not done:
        raise ValueError(f"quant=int8_dynamic changed no layer of model '{bundle.name}'; use quant=int8_weight_only")
    convs = sum(isinstance(m, nn.modules.conv._ConvNd) for m in quantized.modules())
    note = (f"dynamic int8 on {len(done)} Linear/RNN layers; {convs} conv layers stay fp32" if convs
            else f"dynamic int8 on {len(done)} Linear/RNN layers")
    return bundle.with_module(
        quantized, scheme_fingerprint(bundle, cfg), scheme="int8_dynamic", bits=8, act_bits=8, simulated=False,
        backend=f"torch.ao-dynamic-{cfg['backend']}", note=note, quantized_layers=done,
    )
