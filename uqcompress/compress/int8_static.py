"""``quant=int8``: static post-training int8 quantization of convs and linears (torch.ao, x86 backend).

Observers are calibrated on the calibration split. ``quant.mode``:

- ``fx``: torch.ao FX graph mode; Conv-BN-ReLU are fused and activations stay int8 between layers (fastest).
- ``per_layer``: eager mode, each Conv/Linear quantized on its own with calibrated input/output scales and everything
  between layers in fp32 (:mod:`uqcompress.compress.int8_per_layer`); works on any model, e.g. a Hugging Face
  transformer that FX cannot trace.
- ``auto`` (default): ``fx`` where FX traces the model and runs it on an example batch, else ``per_layer``, with a log
  line and ``info['note']`` saying so.

``quant.skip``: ``fnmatch`` patterns of Conv/Linear names kept fp32 (mixed precision), e.g. the FFN output layers of
a BERT whose GELU outputs have outliers: ``quant.skip='[encoder.encoder.layer.?.output.dense]'``.

The calibrated, converted model's state is cached (key: baseline weights, resolved config, calibration data), so a
warm run rebuilds the structure and loads it without calibrating. With ``quant.mode=fx`` a model FX cannot trace
fails with one line naming the model, the scheme and what to use instead, or, with ``quant.fallback=int8_dynamic``,
is quantized by that scheme instead. CPU only (torch.ao quantized kernels).

Example:
    >>> import torch
    >>> from uqcompress.models.small_cnn import SmallCNN
    >>> from uqcompress.models.base import ModelBundle, module_device
    >>> from uqcompress.compress import compress
    >>> b = ModelBundle(SmallCNN().eval(), "small_cnn", "x", "image", 10)
    >>> q = compress(b, {"name": "int8"}, torch.rand(32, 1, 28, 28))
    >>> q.logits(torch.rand(2, 1, 28, 28)).shape, q.info["backend"]
    (torch.Size([2, 10]), 'torch.ao-fx-x86')
"""
from __future__ import annotations

import contextlib
import copy
import fnmatch
import logging
import time
import warnings
from typing import Any, Callable, Iterator

import torch
from torch import nn

from uqcompress.cache import cached
from uqcompress.compress import SCHEMES, CompressContext, Scheme, scheme_fingerprint
from uqcompress.compress._observers import load_observer_states, observer_states
from uqcompress.compress._state import cached_state_path, calibrated_module
from uqcompress.compress._targets import resolve
from uqcompress.compress.int8_per_layer import QUANT_TYPES, convert_per_layer, prepare_per_layer
from uqcompress.compress.peg import grouped_structure, order_groups, peg_layers, peg_options
from uqcompress.compress.recipes import (RECIPES, Cost, bias_correction, check_recipes, distill, distill_options,
                                         start_from_ptq)
from uqcompress.models.base import ModelBundle, module_device

log = logging.getLogger(__name__)

DEFAULTS = {"backend": "x86", "calibration_samples": 512, "mode": "auto", "skip": None, "fallback": None}
MODES = ("auto", "fx", "per_layer")
BACKENDS = ("x86", "fbgemm", "qnnpack", "onednn")
FALLBACKS = ("int8_dynamic", "int8_weight_only")
#: recipes (:mod:`uqcompress.compress.recipes`) this scheme accepts: ``quant.recipe=[...]``, ``quant.distill.*``
INT8_RECIPES = ("minmax", "bias_correction", "distill", "peg")
RECIPE_OPTIONS = {"recipe": None, "distill": None, "peg": None}


def resolve_int8(cfg: dict) -> dict:
    """``cfg`` over :data:`DEFAULTS`; ``recipe`` appears only when set and ``distill`` only when the recipe names it
    (so plain int8 keeps its cache key), the recipe list checked and ``distill`` resolved to its full options."""
    out = resolve("int8", cfg, {**DEFAULTS, **RECIPE_OPTIONS})
    names = check_recipes("int8", out.get("recipe"), None, INT8_RECIPES)
    distill_opts = distill_options(out.get("distill"))  # checked even when unused; part of the key only when used
    peg_opts = peg_options(out.get("peg"))
    for k in RECIPE_OPTIONS:
        out.pop(k, None)
    if names:
        out["recipe"] = names
        if "distill" in names:
            out["distill"] = distill_opts
        if "peg" in names:
            out["peg"] = peg_opts
    return out


def validate_int8(cfg: dict) -> None:
    """One-line ``ValueError`` for options wrong together (checked before any work)."""
    resolve_int8(cfg)
    if cfg.get("recipe") and cfg.get("mode") in ("fx", "per_layer"):  # auto: checked once the mode is resolved
        check_recipes("int8", cfg["recipe"], cfg["mode"], INT8_RECIPES)


class NotTraceable(ValueError):
    """torch.ao FX cannot trace (or run) the model."""


def _refuse(bundle: ModelBundle, why: str) -> ValueError:
    return NotTraceable(f"model '{bundle.name}' cannot be quantized with quant=int8 ({why}); "
                        "use quant.mode=per_layer, quant=int8_dynamic or quant=int8_weight_only instead")


def int8_structure(scheme: Scheme, arch: ModelBundle, cfg: dict, example: Any) -> nn.Module:
    """The converted int8 module of ``arch`` without calibration (a saved predictor then loads every number).

    ``cfg['mode']`` is the mode the run resolved (``fx`` / ``per_layer``), so no trial trace is needed."""
    cfg = resolve_int8(cfg)
    backend = cfg["backend"]
    torch.backends.quantized.engine = backend
    args = (example,) if not isinstance(example, dict) else tuple(example.values())
    mode = cfg["mode"] if cfg["mode"] != "auto" else pick_mode(arch.module, backend, args, "auto")[0]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # "must run observer before calculate_qparams": structure only
        prepared, finish = prepared_int8(arch.module, backend, args, mode, skipped_layers(arch.module, cfg["skip"]),
                                         cfg.get("recipe"), cfg.get("peg"))
        return finish(prepared)


def int8_layers(module: nn.Module) -> list[str]:
    """Names of the Conv/Linear layers static int8 quantizes (what ``quant.skip`` patterns match), in model order."""
    return [n for n, m in module.named_modules() if type(m) in QUANT_TYPES]


@SCHEMES.register("int8", devices=("cpu",), structure=int8_structure, options=(*DEFAULTS, *RECIPE_OPTIONS),
                  skip_layers=int8_layers, validate=validate_int8, recipes=INT8_RECIPES)
def int8_static(bundle: ModelBundle, cfg: dict, calib_x, ctx: CompressContext) -> ModelBundle:
    cfg = resolve_int8(cfg)
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


@contextlib.contextmanager
def _no_stack_traces() -> Iterator[None]:
    """FX tracing without a Python stack trace recorded on every graph node.

    The quantization tracer records them by default, and filtering them imports torch._dynamo and torch._inductor
    (~2 s, a fixed cost of every warm int8 job, which rebuilds the structure to load its cached state). They only
    decorate FX error messages; ``torch.fx.config.do_not_emit_stack_traces`` is torch's switch for that."""
    import torch.fx.config as fx_config

    old = getattr(fx_config, "do_not_emit_stack_traces", None)
    fx_config.do_not_emit_stack_traces = True
    try:
        yield
    finally:
        if old is None:
            del fx_config.do_not_emit_stack_traces
        else:
            fx_config.do_not_emit_stack_traces = old


def _prepare_fx(module: nn.Module, mapping: Any, example_args: tuple) -> nn.Module:
    from torch.ao.quantization.quantize_fx import prepare_fx

    with _no_stack_traces():
        return prepare_fx(module, mapping, example_args)


def _fx_works(module: nn.Module, backend: str, example_args: tuple) -> str | None:
    """None when torch.ao FX traces ``module`` and the prepared graph runs on ``example_args``; else the reason."""
    from torch.ao.quantization import get_default_qconfig_mapping

    try:
        with warnings.catch_warnings(), torch.no_grad():
            warnings.simplefilter("ignore")
            prepared = _prepare_fx(copy.deepcopy(module).eval(), get_default_qconfig_mapping(backend), example_args)
            prepared(*example_args)
    except Exception as e:  # noqa: BLE001 - any tracing / run failure means: not FX-quantizable
        return f"torch.ao FX cannot trace it: {type(e).__name__}"
    return None


def pick_mode(module: nn.Module, backend: str, example_args: tuple, mode: str) -> tuple[str, str | None]:
    """The mode ``quant.mode`` resolves to for ``module`` (``fx`` or ``per_layer``), and why FX was not used."""
    if mode not in MODES:
        raise ValueError(f"quant.mode='{mode}' is not one of: {', '.join(MODES)}")
    if mode == "per_layer":
        return mode, None
    why = _fx_works(module, backend, example_args)
    if why is None:
        return "fx", None
    return ("per_layer" if mode == "auto" else "fx"), why


def skipped_layers(module: nn.Module, patterns: list[str] | tuple[str, ...] | None) -> list[str]:
    """Names of the Conv/Linear layers matching any of the ``fnmatch`` ``patterns`` (``quant.skip``: kept fp32)."""
    if patterns is None:
        return []
    if isinstance(patterns, str) or not all(isinstance(p, str) for p in patterns):
        raise ValueError(f"quant.skip={patterns!r} must be a list of layer-name patterns, e.g. "
                         "['encoder.encoder.layer.?.output.dense']")
    layers = int8_layers(module)
    out = [n for n in layers if any(fnmatch.fnmatchcase(n, p) for p in patterns)]
    unused = [p for p in patterns if not any(fnmatch.fnmatchcase(n, p) for n in layers)]
    if unused:
        raise ValueError(f"quant.skip pattern(s) {unused} match no Conv/Linear layer; layers look like: "
                         f"{', '.join(layers[:4])}{', ...' if len(layers) > 4 else ''}")
    return out


def prepared_int8(module: nn.Module, backend: str, example_args: tuple, mode: str, skip: list[str] | None = None,
                  recipe: list[str] | None = None, peg: dict | None = None
                  ) -> tuple[nn.Module, Callable[[nn.Module], nn.Module]]:
    """(observed copy of ``module``, convert function) for a resolved mode (see :func:`pick_mode`); the layers
    named in ``skip`` stay fp32. ``recipe``: ``minmax`` uses min/max activation observers, ``distill`` prepares
    for quantization-aware training (fake quantization, ``prepare_qat_fx``; the caller fine-tunes it), ``peg``
    (per layer; options ``peg``) splits Linear layers into groups of output channels (:mod:`.peg`; the caller
    orders them on calibration data)."""
    from torch.ao.quantization import QConfig, get_default_qat_qconfig_mapping, get_default_qconfig_mapping
    from torch.ao.quantization.observer import MinMaxObserver, default_per_channel_weight_observer

    recipe = recipe or []
    model = copy.deepcopy(module).eval()
    if mode == "per_layer":
        if "peg" in recipe:
            opts = peg_options(peg)
            grouped_structure(model, peg_layers(model, opts["layers"], skip or []), opts["groups"])
        return prepare_per_layer(model, backend, skip=skip), prepared_int8_finish(mode)
    qat = "distill" in recipe
    mapping = get_default_qat_qconfig_mapping(backend) if qat else get_default_qconfig_mapping(backend)
    if qat:
        mapping.set_global(distill_qconfig(backend))
    if "minmax" in recipe:
        mapping.set_global(QConfig(activation=MinMaxObserver.with_args(reduce_range=backend in ("x86", "fbgemm")),
                                   weight=default_per_channel_weight_observer))
    for name in skip or []:
        mapping.set_module_name(name, None)
    if qat:
        from torch.ao.quantization.quantize_fx import prepare_qat_fx

        with _no_stack_traces():
            return prepare_qat_fx(model.train(), mapping, example_args).eval(), prepared_int8_finish(mode)
    return _prepare_fx(model, mapping, example_args), prepared_int8_finish(mode)


def distill_qconfig(backend: str) -> Any:
    """Fake quantizers for ``quant.recipe=[distill]`` that start where plain static int8 is: the same observers as
    torch.ao's PTQ default (histogram activations, per-channel symmetric weights) inside ``FakeQuantize``. torch.ao's
    default QAT qconfig uses moving-average min/max ranges instead, which start worse than the PTQ model (measured on
    the test block: calibration KL 1.6e-4 vs 0.9e-4 after 40 steps) and would make the recipe a step back."""
    from torch.ao.quantization import FakeQuantize, QConfig
    from torch.ao.quantization.observer import HistogramObserver, PerChannelMinMaxObserver

    reduce = backend in ("x86", "fbgemm")
    act = FakeQuantize.with_args(observer=HistogramObserver, quant_min=0, quant_max=127 if reduce else 255,
                                 dtype=torch.quint8, qscheme=torch.per_tensor_affine)
    weight = FakeQuantize.with_args(observer=PerChannelMinMaxObserver, quant_min=-128, quant_max=127,
                                    dtype=torch.qint8, qscheme=torch.per_channel_symmetric, ch_axis=0)
    return QConfig(activation=act, weight=weight)


def prepared_int8_finish(mode: str) -> Callable[[nn.Module], nn.Module]:
    """The convert step of a resolved mode: observed model -> quantized model."""
    from torch.ao.quantization.quantize_fx import convert_fx

    return convert_per_layer if mode == "per_layer" else convert_fx


def _int8_static(bundle: ModelBundle, cfg: dict, calib_x, ctx: CompressContext) -> ModelBundle:
    backend = cfg["backend"]
    if backend not in BACKENDS:
        raise ValueError(f"quant.backend='{backend}' is not one of: {', '.join(BACKENDS)}")
    if backend not in torch.backends.quantized.supported_engines:
        raise ValueError(f"quant.backend='{backend}' is not supported by this torch build; supported: "
                         f"{', '.join(e for e in torch.backends.quantized.supported_engines if e != 'none')}")
    if module_device(bundle.module).type != "cpu":
        raise ValueError(f"model '{bundle.name}' is on {module_device(bundle.module)} but quant=int8 (torch.ao static) "
                         "runs on CPU only; use quant=int8_weight_only on GPU")
    n_calib = int(cfg["calibration_samples"])
    if n_calib < 1:
        raise ValueError(f"quant.calibration_samples={n_calib} must be >= 1")
    if calib_x is None or len(calib_x) == 0:
        raise ValueError(f"model '{bundle.name}': quant=int8 needs calibration samples but the calibration split "
                         "is empty")
    torch.backends.quantized.engine = backend  # the converted model's kernels dispatch on the global engine
    calib = calib_x[:n_calib]
    example = bundle.prepare(calib_x[:2])
    example_args = (example,) if not isinstance(example, dict) else tuple(example.values())
    # distill's key says where it starts (plain int8's activation ranges, :func:`start_from_ptq`): states cached
    # before that change started from the QAT graph's own, worse ranges
    key = scheme_fingerprint(bundle, {**cfg, "distill_start": "plain_int8"} if "distill" in (cfg.get("recipe") or [])
                             else cfg, calib)
    skip = skipped_layers(bundle.module, cfg["skip"])
    if cfg["mode"] == "auto" and cached_state_path("int8", key).is_file():
        mode, why = "fx", None  # an FX-calibrated state under this key: FX worked here, skip the trial trace (~2 s)
    else:
        mode, why = pick_mode(bundle.module, backend, example_args, cfg["mode"])
    if why and mode == "fx":
        raise _refuse(bundle, why)
    recipe = check_recipes("int8", cfg.get("recipe"), mode, INT8_RECIPES)
    cost = Cost()
    note = None
    if why:
        note = (f"{why}; static int8 per layer instead (each Conv/Linear int8 with calibrated scales, "
                "the ops between layers fp32)")
        log.info("quant=int8 on '%s': %s", bundle.name, note)

    def build(skip: list[str] = skip, recipe: list[str] = recipe) -> nn.Module:
        return prepared_int8(bundle.module, backend, example_args, mode, skip, recipe, cfg.get("peg"))[0]

    def run_calibration(prepared: nn.Module) -> nn.Module:
        try:
            ctx.runner.calibrate(bundle, prepared, calib, batch_size=ctx.batch_size, what="calibrate int8")
        except ValueError:
            raise
        except Exception as e:  # traced but fails on real inputs (data-dependent control flow, dict inputs)
            raise _refuse(bundle, f"the quantized model fails on calibration inputs: {type(e).__name__}") from e
        return prepared

    def calibrate(prepared: nn.Module) -> None:
        if "peg" in recipe:  # the channel order comes from the calibration rows, before the observers see them
            order_groups(bundle, prepared, calib, ctx.batch_size or 64, cost)
        observe(prepared)
        if "distill" in recipe:
            distill(bundle, prepared, calib, cfg["distill"], cost, seed=ctx.seed)
        if "bias_correction" in recipe:
            bias_correction(bundle, prepared, prepared_int8_finish(mode), calib, cost, batch_size=ctx.batch_size)

    def observe(prepared: nn.Module) -> None:
        # one calibration pass (of the model with no layer skipped) serves every quant.skip variant: see _observers.
        # The statistics are keyed by the observers' recipe (minmax / distill's fake quantizers differ from the
        # default's); a recipe that only acts after calibration (bias_correction) shares plain int8's.
        observer_recipe = [r for r in recipe if RECIPES[r].changes_observers]
        stats_cfg = {k: v for k, v in cfg.items() if k not in RECIPE_OPTIONS}
        stats_key = scheme_fingerprint(bundle, {**stats_cfg, "mode": mode, "skip": None,
                                                **({"recipe": observer_recipe} if observer_recipe else {})}, calib)
        if "distill" in recipe:  # the QAT graph starts from plain int8's activation statistics (shared cache)
            t0 = time.perf_counter()
            plain_key = scheme_fingerprint(bundle, {**stats_cfg, "mode": mode, "skip": None}, calib)
            plain = cached("int8_observers", plain_key, lambda: observer_states(run_calibration(build([], []))),
                           log=log.debug, finite=False, model=bundle.label, split="calibration")
            missing = start_from_ptq(prepared, plain)
            if missing:
                log.info("quant.recipe=distill: %d fake quantizer(s) have no plain int8 statistics (%s); calibrating "
                         "the QAT model itself", len(missing), missing[0])
                run_calibration(prepared)
            cost.seconds, cost.samples = cost.seconds + time.perf_counter() - t0, cost.samples + len(calib)
            return
        if "peg" in recipe:  # re-ordered after build: calibrate this model itself
            t0 = time.perf_counter()
            run_calibration(prepared)
            cost.seconds, cost.samples = cost.seconds + time.perf_counter() - t0, cost.samples + len(calib)
            return
        states = cached("int8_observers", stats_key,
                        lambda: observer_states(run_calibration(prepared if not skip else build([]))),
                        log=log.debug, finite=False,  # an observer that saw no value holds +-inf: legitimate
                        model=bundle.label, split="calibration")
        missing = load_observer_states(prepared, states)
        if missing:  # an observer the full model has not (e.g. another observer class): calibrate this variant
            log.info("quant=int8: %d observer(s) of this quant.skip variant are new (%s); calibrating it",
                     len(missing), missing[0])
            run_calibration(prepared)

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # torch.ao deprecation chatter; un-run observers on a cache hit
        quantized, hit = calibrated_module("int8" if mode == "fx" else "int8_per_layer", key, build, calibrate,
                                           prepared_int8_finish(mode))
    log.info("int8 static (%s, %s): %s on %d samples", backend, mode, "loaded calibrated state" if hit else "calibrated",
             len(calib))
    return bundle.with_module(
        quantized, key, quant={**cfg, "name": "int8", "mode": mode}, scheme="int8", bits=8, act_bits=8,
        simulated=False, backend=f"torch.ao-{'fx' if mode == 'fx' else 'eager-per-layer'}-{backend}",
        calibration_samples=len(calib), compressed_from_cache=hit, **({"note": note} if note else {}),
        **({"fp32_layers": skip} if skip else {}),
        **({"recipe": "+".join(recipe), "recipe_seconds": round(cost.seconds, 3),
            "recipe_passes": cost.passes(len(calib)), "recipe_rows": f"calibration[:{len(calib)}]"} if recipe else {}),
    )
