"""``quant=int8``: static post-training int8 quantization of convs and linears with torch.ao FX (x86 backend).

Observers are calibrated on the calibration split; Conv-BN-ReLU are fused first. The calibrated, converted model's
state is cached (key: baseline weights, resolved config, calibration data), so a warm run rebuilds the structure
and loads it without calibrating. A model FX cannot trace (e.g. a Hugging Face transformer) fails with one line
naming the model, the scheme and what to use instead, or, with ``quant.fallback=int8_dynamic``, is quantized by
that scheme instead (``info['note']`` says so). CPU only (torch.ao quantized kernels).

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
from torch import nn

from uqcompress.compress import SCHEMES, CompressContext, scheme_fingerprint
from uqcompress.compress._state import calibrated_module, run_calibration
from uqcompress.compress._targets import module_device, resolve
from uqcompress.models.base import ModelBundle

log = logging.getLogger(__name__)

DEFAULTS = {"backend": "x86", "calibration_samples": 512, "fallback": None}
BACKENDS = ("x86", "fbgemm", "qnnpack", "onednn")
FALLBACKS = ("int8_dynamic", "int8_weight_only")


class NotTraceable(ValueError):
    """torch.ao FX cannot trace (or run) the model."""


def _refuse(bundle: ModelBundle, why: str) -> ValueError:
    return NotTraceable(f"model '{bundle.name}' cannot be quantized with quant=int8 ({why}); "
                        "use quant=int8_dynamic or quant=int8_weight_only instead (or quant.fallback=int8_dynamic)")


@SCHEMES.register("int8")
def int8_static(bundle: ModelBundle, cfg: dict, calib_x, ctx: CompressContext) -> ModelBundle:
    cfg = resolve("int8", cfg, DEFAULTS)
    fallback = cfg["fallback"]
    if fallback is not None and fallback not in FALLBACKS:
        raise ValueError(f"quant.fallback='{fallback}' is not one of: null, {', '.join(FALLBACKS)}")
    try:
        return _int8_static(bundle, cfg, calib_x, ctx)
    except NotTraceable as e:
        if fallback is None:
            raise
        log.warning("%s; falling back to quant=%s", e, fallback)
        out = SCHEMES.get(fallback)(bundle, {"name": fallback}, calib_x, ctx)
        note = f"quant=int8 could not quantize '{bundle.name}' (torch.ao FX); fell back to quant={fallback}"
        return out.with_module(out.module, out.fingerprint, note=f"{note}; {out.info.get('note', '')}".rstrip("; "))


def _int8_static(bundle: ModelBundle, cfg: dict, calib_x, ctx: CompressContext) -> ModelBundle:
    from torch.ao.quantization import get_default_qconfig_mapping
    from torch.ao.quantization.quantize_fx import convert_fx, prepare_fx

    backend = cfg["backend"]
    if backend not in BACKENDS:
        raise ValueError(f"quant.backend='{backend}' is not one of: {', '.join(BACKENDS)}")
    if backend not in torch.backends.quantized.supported_engines:
        raise ValueError(f"quant.backend='{backend}' is not supported by this torch build; supported: "
                         f"{', '.join(e for e in torch.backends.quantized.supported_engines if e != 'none')}")
    if module_device(bundle.module) != "cpu":
        raise ValueError(f"model '{bundle.name}' is on cuda but quant=int8 (torch.ao static) runs on CPU only; "
                         "use quant=int8_weight_only on GPU")
    n_calib = int(cfg["calibration_samples"])
    if n_calib < 1:
        raise ValueError(f"quant.calibration_samples={n_calib} must be >= 1")
    torch.backends.quantized.engine = backend  # the converted model's kernels dispatch on the global engine
    calib = calib_x[:n_calib]
    example = bundle.prepare(calib_x[:2])
    example_args = (example,) if not isinstance(example, dict) else tuple(example.values())
    key = scheme_fingerprint(bundle, cfg, calib)

    def build() -> nn.Module:
        model = copy.deepcopy(bundle.module).eval()
        try:
            return prepare_fx(model, get_default_qconfig_mapping(backend), example_args)
        except Exception as e:
            raise _refuse(bundle, f"torch.ao FX cannot trace it: {type(e).__name__}") from e

    def calibrate(prepared: nn.Module) -> None:
        try:
            run_calibration(bundle, prepared, calib, ctx.batch_size, ctx.progress, desc=f"{bundle.name}:calibrate int8")
        except ValueError:
            raise
        except Exception as e:  # traced but fails on real inputs (data-dependent control flow, dict inputs)
            raise _refuse(bundle, f"the traced model fails on calibration inputs: {type(e).__name__}") from e

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # torch.ao deprecation chatter; un-run observers on a cache hit
        quantized, hit = calibrated_module("int8", key, build, calibrate, convert_fx)
    log.info("int8 static (%s): %s on %d samples", backend, "loaded calibrated state" if hit else "calibrated",
             len(calib))
    return bundle.with_module(
        quantized, key, scheme="int8", bits=8, act_bits=8, simulated=False, backend=f"torch.ao-fx-{backend}",
        calibration_samples=len(calib), compressed_from_cache=hit,
    )
