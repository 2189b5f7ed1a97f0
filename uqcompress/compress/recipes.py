"""Quantization recipes: ways to quantize that keep more of the baseline's answers (``quant.recipe=[...]``).

A recipe runs inside a calibrated scheme's calibration step, on the calibration split only (never the test split),
before the observed model is converted. Several chain in the order listed. Each :class:`Recipe` says which schemes,
``quant.mode`` values and devices it supports; a scheme's registry entry lists the recipes it accepts
(:attr:`uqcompress.compress.Scheme.recipes`) and :func:`check_recipes` refuses anything else with one line, before
any work (:mod:`uqcompress.validate` calls the scheme's ``validate``).

- ``minmax``: activation ranges from the plain min/max observer instead of torch.ao's x86 default, the histogram
  observer (which already searches the range minimising the L2 quantization error: the "MSE / histogram" range is
  the default, and this recipe exists to compare against it).
- ``distill``: quantization-aware fine-tuning (torch.ao ``prepare_qat_fx``: fake-quantized weights and activations,
  BatchNorm statistics frozen; starting from the same observers as plain int8) of the model on the calibration
  split for ``quant.distill.steps`` Adam steps at ``quant.distill.lr``, with loss KL(baseline || compressed) on the baseline's own soft outputs (no labels), then
  the usual convert.
- ``peg`` (``quant.mode=per_layer``): each Linear's output channels, ordered by their calibration range, are cut into
  ``quant.peg.groups`` groups quantized with their own output scale, so a transformer's outlier dimensions stop
  crushing the others (:mod:`uqcompress.compress.peg`; ``quant.peg.layers``: which Linear layers, default all).
- ``hqq`` (``int4_weight_only`` on CPU): torchao's half-quadratic (HQQ) scale search for each weight group
  (``IntxChooseQParamsAlgorithm.HQQ_SCALE_ONLY``, symmetric) instead of min/max affine scales; weights only, no
  calibration rows.
- ``bias_correction``: the mean output error of the quantized model on the calibration split, per output class, is
  subtracted through the bias of the last Linear layer. torch.ao's ``_correct_bias`` needs the eager numeric-suite
  shadow model (no FX graph support), so this is the simple per-channel mean-output correction, applied where the
  error ends up (the logits); it needs a model whose last quantized layer is the Linear producing the logits.

Example:
    >>> from uqcompress.compress.recipes import RECIPES, check_recipes
    >>> sorted(RECIPES)
    ['bias_correction', 'distill', 'hqq', 'minmax', 'peg']
    >>> check_recipes("int8", ["distill"], "fx", RECIPES)
    ['distill']
"""
from __future__ import annotations

import copy
import logging
import time
from dataclasses import dataclass
from typing import Any, Callable

import torch
import torch.nn.functional as F
from torch import nn

from uqcompress.models.base import ModelBundle, call_module

log = logging.getLogger(__name__)

DISTILL_DEFAULTS = {"steps": 60, "lr": 1e-5, "batch_size": 16}  # = conf/quant/int8.yaml (measured on Lite0 there)


class RecipeUnsupported(ValueError):
    """A recipe this model or setting cannot take (a mode, a device, a layer it needs): one line, and
    ``python -m uqcompress.tune`` leaves that candidate out instead of stopping (other ``ValueError`` s are config
    errors and stop it)."""


@dataclass(frozen=True)
class Recipe:
    """One recipe: the schemes, ``quant.mode`` values and devices it supports, and whether it changes the
    observers (then calibration statistics are never shared with plain int8's, see :mod:`._observers`)."""

    name: str
    schemes: tuple[str, ...]
    modes: tuple[str, ...]
    devices: tuple[str, ...]
    doc: str
    changes_observers: bool = False
    trains: bool = False


RECIPES: dict[str, Recipe] = {
    "minmax": Recipe("minmax", ("int8",), ("fx",), ("cpu",), "min/max activation observer", changes_observers=True),
    "distill": Recipe("distill", ("int8",), ("fx",), ("cpu",), "QAT fine-tuning, loss KL(baseline || compressed)",
                      changes_observers=True, trains=True),
    "hqq": Recipe("hqq", ("int4_weight_only",), (), ("cpu",),
                  "torchao's HQQ scale search for int4 weights (IntxChooseQParamsAlgorithm.HQQ_SCALE_ONLY)"),
    "bias_correction": Recipe("bias_correction", ("int8",), ("fx", "per_layer"), ("cpu",),
                              "mean logit error removed through the last Linear's bias"),
    "peg": Recipe("peg", ("int8",), ("per_layer",), ("cpu",),
                  "per-embedding-group output ranges (Bondarenko et al. 2021), see uqcompress.compress.peg",
                  changes_observers=True),
}


def check_recipes(scheme: str, recipe: Any, mode: str | None, accepted: dict[str, Recipe] | tuple[str, ...],
                  device: str | None = None) -> list[str]:
    """The recipe list of ``quant.recipe`` checked for ``scheme`` (and ``mode`` / the model's ``device`` type when
    known); one-line ``ValueError`` for an unknown or duplicated recipe, :class:`RecipeUnsupported` for one the
    scheme, mode or device cannot take."""
    if recipe is None:
        return []
    names = [recipe] if isinstance(recipe, str) else list(recipe)
    if not all(isinstance(n, str) for n in names):
        raise ValueError(f"quant.recipe={recipe!r} must be a list of recipe names, e.g. [distill]")
    for n in names:
        if n not in RECIPES:
            raise ValueError(f"quant.recipe: unknown recipe '{n}'; recipes: {', '.join(sorted(RECIPES))}")
        r = RECIPES[n]
        if scheme not in r.schemes or n not in accepted:
            raise RecipeUnsupported(f"quant.recipe: recipe '{n}' does not support quant={scheme}; it supports "
                                    f"quant={'/'.join(r.schemes)}")
        if mode is not None and mode not in r.modes:
            raise RecipeUnsupported(f"quant.recipe: recipe '{n}' needs quant.mode={'/'.join(r.modes)} but this "
                                    f"model runs in quant.mode={mode}")
        if device is not None and device not in r.devices:
            raise RecipeUnsupported(f"quant.recipe: recipe '{n}' ({r.doc}) runs on {'/'.join(r.devices)} only; this "
                                    f"model is on {device}")
    if len(set(names)) != len(names):
        raise ValueError(f"quant.recipe={names} names a recipe twice")
    if "minmax" in names and "distill" in names:
        raise ValueError("quant.recipe: 'minmax' and 'distill' both choose the observers; use one of them")
    return names


def recipe_options(recipe: str, opts: Any, defaults: dict[str, Any]) -> dict[str, Any]:
    """``quant.<recipe>`` options overlaid on ``defaults``; an unknown option is one ``ValueError`` line naming the
    options (each recipe then checks its own values).

    >>> recipe_options("peg", {"groups": 4}, {"groups": 8, "layers": None})
    {'groups': 4, 'layers': None}
    """
    opts = dict(opts or {})
    unknown = sorted(set(opts) - set(defaults))
    if unknown:
        raise ValueError(f"quant.{recipe}: unknown option(s) {unknown}; options: {', '.join(defaults)}")
    return {**defaults, **opts}


def distill_options(opts: Any) -> dict[str, Any]:
    """``quant.distill`` overlaid on :data:`DISTILL_DEFAULTS`; one-line ``ValueError`` on a bad option."""
    out = recipe_options("distill", opts, DISTILL_DEFAULTS)
    if not (isinstance(out["steps"], int) and out["steps"] >= 1):
        raise ValueError(f"quant.distill.steps={out['steps']!r} must be a whole number >= 1")
    if not (isinstance(out["batch_size"], int) and out["batch_size"] >= 1):
        raise ValueError(f"quant.distill.batch_size={out['batch_size']!r} must be a whole number >= 1")
    if not (isinstance(out["lr"], (int, float)) and 0 < out["lr"] < 1):
        raise ValueError(f"quant.distill.lr={out['lr']!r} must be a number in (0, 1)")
    return out


def kl_to_baseline(teacher_logits: torch.Tensor, student_logits: torch.Tensor) -> torch.Tensor:
    """Mean KL(softmax(teacher) || softmax(student)) over the batch (nats)."""
    log_p = F.log_softmax(teacher_logits.float(), dim=-1)
    return F.kl_div(F.log_softmax(student_logits.float(), dim=-1), log_p, log_target=True, reduction="batchmean")


@dataclass
class Cost:
    """What the recipes cost: wall seconds and calibration samples forwarded (a distillation step's forward and
    backward counts its batch once); ``passes`` = samples / calibration rows."""

    seconds: float = 0.0
    samples: int = 0

    def passes(self, rows: int) -> float:
        return round(self.samples / max(rows, 1), 2)


def _batches(bundle: ModelBundle, calib: Any, batch_size: int, seed: int) -> Callable[[], Any]:
    """An endless, seeded, shuffled supply of prepared calibration batches."""
    gen = torch.Generator().manual_seed(seed)
    state: dict[str, Any] = {"order": [], "pos": 0}

    def next_batch() -> Any:
        if state["pos"] >= len(state["order"]):
            state["order"], state["pos"] = torch.randperm(len(calib), generator=gen).tolist(), 0
        idx = state["order"][state["pos"]:state["pos"] + batch_size]
        state["pos"] += batch_size
        rows = calib[torch.tensor(idx)] if isinstance(calib, torch.Tensor) else [calib[i] for i in idx]
        return bundle.prepare(rows)

    return next_batch


def start_from_ptq(prepared: nn.Module, states: dict[str, dict[str, torch.Tensor]]) -> list[str]:
    """Give the activation fake quantizers of the QAT graph ``prepared`` plain int8's calibrated observer statistics
    ``states`` (:func:`uqcompress.compress._observers.observer_states` of the PTQ graph, keyed by the graph node each
    observes), so distillation starts from plain int8's activation ranges; returns the keys it could not fill
    (then nothing is copied and the caller calibrates ``prepared`` itself).

    Why not calibrate the QAT graph itself: measured on EfficientNet-Lite0 (x86), its activation ranges come out
    far wider than plain int8's (the first depthwise conv's output step 0.63 vs 0.047: torch.ao's PTQ graph
    observes the ReLU6-clamped output, the QAT graph the unclamped one), and the un-trained QAT model flipped 19.6%
    of 1,000 Fashion-MNIST test answers where plain int8 flips 5.1%."""
    from uqcompress.compress._observers import activation_fake_quantizers, load_observer_states

    fakes = activation_fake_quantizers(prepared)
    if not fakes:
        return ["(no activation fake quantizer)"]
    missing = load_observer_states(prepared, states, fake_quantizers=True)
    if missing:
        return missing
    for m in fakes:  # the fake quantizers' scale / zero point from the statistics just loaded
        scale, zero_point = m.activation_post_process.calculate_qparams()
        m.scale.resize_(scale.shape).copy_(scale)
        m.zero_point.resize_(zero_point.shape).copy_(zero_point)
    return []


def distill(bundle: ModelBundle, prepared: nn.Module, calib: Any, opts: dict, cost: Cost, seed: int = 0) -> None:
    """Fine-tune the QAT-prepared (fake-quantized, observers already calibrated) ``prepared`` in place so its
    outputs match the baseline's on the calibration split: loss KL(baseline || compressed). BatchNorm statistics
    stay frozen (eval mode); the activation ranges stay those of the calibration pass, the weights' per-channel
    ranges follow the weights."""
    from torch.ao.quantization import disable_observer

    t0 = time.perf_counter()
    torch.manual_seed(seed)
    teacher = bundle.module.eval()
    prepared.eval()  # frozen BN statistics, no dropout; fake quantization stays on
    params = [p for p in prepared.parameters() if p.requires_grad]
    opt = torch.optim.Adam(params, lr=float(opts["lr"]))
    next_batch = _batches(bundle, calib, int(opts["batch_size"]), seed)
    steps = int(opts["steps"])
    prepared.apply(disable_observer)  # activation ranges: the calibration pass's; weight ranges follow the weights
    for m in prepared.modules():
        if hasattr(m, "weight_fake_quant"):
            m.weight_fake_quant.enable_observer()
    with torch.enable_grad():
        for step in range(steps):
            inputs = next_batch()
            with torch.no_grad():
                target = call_module(teacher, inputs)
            loss = kl_to_baseline(target, call_module(prepared, inputs))
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            cost.samples += len(target)
    for p in prepared.parameters():
        p.requires_grad_(False)
    cost.seconds += time.perf_counter() - t0
    log.info("quant.recipe=distill: %d steps, final batch KL %.4g", steps, float(loss))


def _last_linear(module: nn.Module) -> tuple[str, nn.Module] | None:
    last = None
    for name, m in module.named_modules():
        if isinstance(m, nn.Linear) or (hasattr(m, "weight") and hasattr(m, "bias") and hasattr(m, "in_features")):
            last = (name, m)
    return last


def _grouped_parent(module: nn.Module, name: str) -> tuple[str, nn.Module] | None:
    """The :class:`uqcompress.compress.peg.GroupedLinear` that the layer ``name`` is a part of, if any."""
    from uqcompress.compress.peg import GroupedLinear

    parts = name.split(".")
    for i in range(len(parts) - 1, 0, -1):
        prefix = ".".join(parts[:i])
        if isinstance(module.get_submodule(prefix), GroupedLinear):
            return prefix, module.get_submodule(prefix)
    return None


def bias_correction(bundle: ModelBundle, prepared: nn.Module, finish: Callable[[nn.Module], nn.Module], calib: Any,
                    cost: Cost, batch_size: int = 64) -> None:
    """Subtract the quantized model's mean logit error on the calibration split (a per-class vector) through the
    bias of the last Linear layer of the observed model ``prepared`` (in place; its observers are calibrated)."""
    t0 = time.perf_counter()
    found = _last_linear(prepared)
    if found is None or getattr(found[1], "bias", None) is None:
        raise RecipeUnsupported(f"quant.recipe=bias_correction: model '{bundle.name}' has no Linear layer with a "
                                "bias to correct; drop the recipe")
    name, layer = found
    grouped = _grouped_parent(prepared, name)  # quant.recipe=[peg,...]: the logits layer split into groups
    if grouped is not None:
        name, layer = grouped
    quantized = finish(copy.deepcopy(prepared)).eval()
    err = None
    with torch.no_grad():
        for i in range(0, len(calib), batch_size):
            inputs = bundle.prepare(calib[i:i + batch_size])
            diff = (call_module(bundle.module.eval(), inputs).float() - call_module(quantized, inputs).float())
            err = diff.sum(0) if err is None else err + diff.sum(0)
            cost.samples += 2 * len(diff)
    delta = err / len(calib)
    if delta.ndim != 1 or delta.shape[0] != layer.out_features:
        raise RecipeUnsupported(f"quant.recipe=bias_correction: model '{bundle.name}': the last Linear layer "
                                f"'{name}' ({layer.out_features} outputs) does not produce the {delta.shape[-1]} "
                                "logits; drop the recipe")
    with torch.no_grad():
        if grouped is not None:
            layer.add_bias(delta)
        else:
            layer.bias.add_(delta.to(layer.bias.dtype))
    cost.seconds += time.perf_counter() - t0
    log.info("quant.recipe=bias_correction: '%s' bias moved by up to %.4g", name, float(delta.abs().max()))


__all__ = ["DISTILL_DEFAULTS", "RECIPES", "Cost", "Recipe", "RecipeUnsupported", "bias_correction", "check_recipes",
           "distill", "distill_options", "recipe_options", "kl_to_baseline", "start_from_ptq"]
