"""``quant=brevitas_w8a8`` / ``brevitas_w4a8`` / ``brevitas_w4a4``: brevitas post-training fake quantization.

Each targeted Linear / Conv layer is replaced by its brevitas counterpart (``QuantLinear``, ``QuantConv2d``, ...) with
a ``quant.weight_bits`` weight quantizer (per-output-channel float scale by default) and, unless
``quant.act_bits=null``, a ``quant.act_bits`` input quantizer (per-tensor float scale) whose range is calibrated over
the calibration split in brevitas ``calibration_mode``. Layer replacement needs no FX tracing, so it works on
transformer text models too (their Linear layers). Biases stay float. Everything computes in float32 on
quantize-dequantized values (``simulated: true``); the state_dict keeps float weights, so it is not smaller.
The calibrated state is cached: a warm run rebuilds the layers and loads it without calibrating.

Example:
    >>> import torch
    >>> from uqcompress.models.base import ModelBundle
    >>> from uqcompress.compress import compress
    >>> net = torch.nn.Sequential(torch.nn.Linear(8, 16), torch.nn.ReLU(), torch.nn.Linear(16, 3))
    >>> q = compress(ModelBundle(net, "mlp", "x", "image", 3), {"name": "brevitas_w4a8"}, torch.randn(64, 8))
    >>> q.info["bits"], q.info["act_bits"], q.logits(torch.zeros(2, 8)).shape
    (4, 8, torch.Size([2, 3]))
"""
from __future__ import annotations

import copy
import logging
import warnings
from functools import partial

from torch import nn

from uqcompress.compress import SCHEMES, CompressContext, Scheme, scheme_fingerprint
from uqcompress.compress._state import calibrated_module
from uqcompress.compress._targets import resolve, select_layers, set_submodule
from uqcompress.models.base import ModelBundle

log = logging.getLogger(__name__)

PRESETS = {"brevitas_w8a8": (8, 8), "brevitas_w4a8": (4, 8), "brevitas_w4a4": (4, 4)}
GRANULARITY = ("per_channel", "per_tensor")


def _defaults(name: str) -> dict:
    w, a = PRESETS[name]
    return {"weight_bits": w, "act_bits": a, "weight_granularity": "per_channel", "calibration_samples": 256,
            "target": "all", "include_head": True}


def _bits(value, what: str, allow_none: bool) -> int | None:
    if value is None and allow_none:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or not 2 <= value <= 16:
        raise ValueError(f"quant.{what}={value!r} must be an int in 2..16" + (" or null" if allow_none else ""))
    return value


def _layer_map():
    import brevitas.nn as qnn

    return {nn.Linear: qnn.QuantLinear, nn.Conv1d: qnn.QuantConv1d, nn.Conv2d: qnn.QuantConv2d,
            nn.Conv3d: qnn.QuantConv3d}


def quantize_layers(module: nn.Module, names: list[str], weight_bits: int, act_bits: int | None,
                    per_channel: bool = True) -> nn.Module:
    """A copy of ``module`` whose layers ``names`` are brevitas quant layers (weights ``weight_bits``, inputs
    ``act_bits`` or float when None). Deterministic: the same call rebuilds the same structure."""
    from brevitas import config
    from brevitas.graph.base import ModuleToModuleByInstance
    from brevitas.quant import Int8ActPerTensorFloat, Int8WeightPerChannelFloat, Int8WeightPerTensorFloat

    weight_q = (Int8WeightPerChannelFloat if per_channel else Int8WeightPerTensorFloat).let(bit_width=weight_bits)
    act_q = Int8ActPerTensorFloat.let(bit_width=act_bits) if act_bits else None
    layer_map = _layer_map()
    model = copy.deepcopy(module).eval()
    ignore = config.IGNORE_MISSING_KEYS
    config.IGNORE_MISSING_KEYS = True  # new quantizer params are initialised, not loaded from the float layer
    try:
        for name in names:
            old = model.get_submodule(name)
            cls = layer_map[type(old)]
            new = ModuleToModuleByInstance(old, cls, weight_quant=weight_q, input_quant=act_q, bias_quant=None,
                                           return_quant_tensor=False).init_new_module(old_module=old, name=name)
            set_submodule(model, name, new.to(old.weight.device))
    finally:
        config.IGNORE_MISSING_KEYS = ignore
    return model.eval()


def _resolved(name: str, bundle: ModelBundle, cfg: dict) -> tuple[dict, int, int | None, list[str]]:
    """(resolved config, weight bits, act bits, names of the layers to quantize); one-line errors for bad options."""
    cfg = resolve(name, cfg, _defaults(name))
    wb = _bits(cfg["weight_bits"], "weight_bits", allow_none=False)
    ab = _bits(cfg["act_bits"], "act_bits", allow_none=True)
    if cfg["weight_granularity"] not in GRANULARITY:
        raise ValueError(f"quant.weight_granularity='{cfg['weight_granularity']}' is not one of: "
                         f"{', '.join(GRANULARITY)}")
    # exact types only: a subclass (e.g. an already-quantized layer) has its own forward brevitas would drop
    names = [n for n in select_layers(bundle, bundle.module, cfg, tuple(_layer_map()), name)
             if type(bundle.module.get_submodule(n)) in _layer_map()]
    if not names:
        raise ValueError(f"quant={name}: model '{bundle.name}' has no plain Linear/Conv layer to quantize "
                         "(already quantized?); put brevitas first in a chain")
    return cfg, wb, ab, names


def _structure(scheme: Scheme, arch: ModelBundle, cfg: dict, example) -> nn.Module:
    """The brevitas layers of ``arch`` (deterministic); a saved predictor loads the calibrated ranges into them."""
    cfg, wb, ab, names = _resolved(scheme.name, arch, cfg)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return quantize_layers(arch.module, names, wb, ab, cfg["weight_granularity"] == "per_channel")


def _brevitas(name: str, bundle: ModelBundle, cfg: dict, calib_x, ctx: CompressContext) -> ModelBundle:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # brevitas warns at import about optional CUDA extensions
        from brevitas.graph.calibrate import calibration_mode

    cfg, wb, ab, names = _resolved(name, bundle, cfg)
    calib = calib_x[: int(cfg["calibration_samples"])] if ab else None
    key = scheme_fingerprint(bundle, cfg, calib)

    def build() -> nn.Module:
        return quantize_layers(bundle.module, names, wb, ab, cfg["weight_granularity"] == "per_channel")

    def calibrate(model: nn.Module) -> None:
        if ab is None:
            return  # weight-only: weight scales come from the weights, nothing to observe
        with calibration_mode(model):
            ctx.runner.calibrate(bundle, model, calib, batch_size=ctx.batch_size, what=f"calibrate {name}")

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model, hit = calibrated_module(name, key, build, calibrate)
    return bundle.with_module(
        model, key, scheme=name, bits=wb, act_bits=ab, simulated=True, backend="brevitas-fakequant",
        quantized_layers=names, calibration_samples=0 if calib is None else len(calib),
        compressed_from_cache=hit,
        note=f"brevitas fake quantization (w{wb}{'' if ab is None else f'a{ab}'}) of {len(names)} layers, "
             "computed in fp32",
    )


for _name in PRESETS:
    SCHEMES.register(_name, partial(_brevitas, _name), structure=_structure, options=tuple(_defaults(_name)))
