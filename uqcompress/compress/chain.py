"""``quant=chain`` (and presets such as ``quant=prune_int8``): several schemes applied in order.

``quant: {name: chain, steps: [{name: prune_global_l1, amount: 0.5}, {name: int8_dynamic}]}`` prunes then quantizes.
Every step sees the same calibration data and caches under its own key (which hashes the previous step's
fingerprint), so a chain reuses what its prefix computed. ``info`` merges the steps' facts: ``scheme`` joins the
step names, ``bits``/``simulated`` come from the last quantizing step, and ``sparsity`` is re-measured on the final
model over the pruned layers (quantization keeps exact zeros when the weight zero-point is 0).

Example:
    >>> import torch
    >>> from uqcompress.models.base import ModelBundle
    >>> from uqcompress.compress import compress
    >>> net = torch.nn.Sequential(torch.nn.Linear(8, 16), torch.nn.ReLU(), torch.nn.Linear(16, 3))
    >>> steps = [{"name": "prune_global_l1", "amount": 0.5}, {"name": "int8_dynamic"}]
    >>> c = compress(ModelBundle(net, "mlp", "x", "image", 3, head="2"), {"name": "chain", "steps": steps}, None)
    >>> c.info["scheme"], c.info["bits"], c.info["sparsity"]
    ('prune_global_l1+int8_dynamic', 8, 0.5)
"""
from __future__ import annotations

from functools import partial
from typing import Any

from torch import nn

from uqcompress.compress import ALL_DEVICES, SCHEMES, CompressContext, Scheme, scheme_fingerprint
from uqcompress.compress._targets import resolve
from uqcompress.measure import weight_sparsity
from uqcompress.models.base import ModelBundle

CHAIN_NAMES = ("chain", "prune_int8")


def _steps(name: str, cfg: dict) -> list[dict[str, Any]]:
    steps = cfg.get("steps")
    if not steps or not isinstance(steps, (list, tuple)):
        raise ValueError(f"quant={name} needs quant.steps: a non-empty list of schemes, e.g. "
                         "[{name: prune_global_l1, amount: 0.5}, {name: int8}]")
    out = []
    for i, s in enumerate(steps):
        s = {"name": s} if isinstance(s, str) else dict(s)
        if "name" not in s:
            raise ValueError(f"quant={name}: step {i} has no 'name'; choose one of: {', '.join(SCHEMES.names())}")
        if s["name"] in CHAIN_NAMES:
            raise ValueError(f"quant={name}: step {i} is itself a chain ('{s['name']}'); list its steps instead")
        SCHEMES.get(s["name"])  # unknown name: one line listing the choices
        out.append(s)
    quantized = False
    for i, s in enumerate(out):
        prunes = SCHEMES.get(s["name"]).prunes
        if prunes and quantized:
            raise ValueError(f"quant={name}: step {i} ({s['name']}) prunes after a quantization step; "
                             "put pruning steps first")
        quantized |= not prunes and s["name"] != "none"
    return out


def _chain(name: str, bundle: ModelBundle, cfg: dict, calib_x, ctx: CompressContext) -> ModelBundle:
    cfg = resolve(name, cfg, {"steps": None})
    steps = _steps(name, cfg)
    current, pruned_names, facts, notes, step_quants = bundle, [], {}, [], []
    for step in steps:
        current = SCHEMES.get(step["name"])(current, step, calib_x, ctx)
        step_quants.append(current.quant)
        pruned_names += [n for n in current.info.get("pruned_layers", []) if n not in pruned_names]
        facts.update({k: v for k, v in current.info.items() if k not in bundle.info or bundle.info[k] != v})
        if current.info.get("note") and current.info["note"] not in notes:
            notes.append(current.info["note"])
    if pruned_names:  # re-measure on the final model (quantized weights are dequantized to count)
        try:
            facts["sparsity"] = weight_sparsity(current.module, pruned_names)
        except AttributeError:  # a later step renamed/fused the layers: keep the prune step's measurement
            pass
    facts["scheme"] = "+".join(s["name"] for s in steps)
    if notes:
        facts["note"] = " | ".join(notes)
    # the last step's key already hashes every step's config and calibration data
    return bundle.with_module(current.module, scheme_fingerprint(bundle, {"steps": steps, "last": current.fingerprint}),
                              quant={"name": name, "steps": step_quants}, **facts)


def _devices(name: str, cfg: dict) -> tuple[str, ...]:
    """Devices every step runs on."""
    steps = _steps(name, resolve(name, cfg, {"steps": None}))
    return tuple(d for d in ALL_DEVICES if all(d in SCHEMES.get(s["name"]).devices_for(s) for s in steps))


def _deployable(name: str, cfg: dict) -> bool:
    steps = _steps(name, resolve(name, cfg, {"steps": None}))
    return all(SCHEMES.get(s["name"]).deployable(s) for s in steps)


def _autocast(name: str, cfg: dict) -> str | None:
    steps = _steps(name, resolve(name, cfg, {"steps": None}))
    return next((d for d in (SCHEMES.get(s["name"]).autocast_for(s) for s in steps) if d), None)


def _structure(scheme: Scheme, arch: ModelBundle, cfg: dict, example) -> nn.Module:
    """Each step's structure on top of the previous one's (the saved state then fills every number)."""
    current = arch
    for step in _steps(scheme.name, resolve(scheme.name, cfg, {"steps": None})):
        entry = SCHEMES.get(step["name"])
        if entry.structure is None:
            raise ValueError(f"quant={scheme.name}: step {step['name']} cannot be rebuilt from a saved file")
        current = current.with_module(entry.structure(entry, current, step, example), current.fingerprint)
    return current.module


def _validate(name: str, cfg: dict) -> None:
    """Each step is a known, non-chain scheme with options it reads (one line naming the first that is not)."""
    for i, step in enumerate(_steps(name, resolve(name, cfg, {"steps": None}))):
        known = SCHEMES.get(step["name"]).options
        bad = sorted(set(step) - {"name"} - set(known or ())) if known is not None else []
        if bad:
            raise ValueError(f"quant={name}: step {i} ({step['name']}) has unknown option(s) {bad}; options: "
                             f"{', '.join(known) or 'none'}")


for _name in CHAIN_NAMES:
    _fn = partial(_chain, _name)
    _fn.deployable = partial(_deployable, _name)  # type: ignore[attr-defined]
    SCHEMES.register(_name, _fn, devices=partial(_devices, _name), structure=_structure,
                     autocast=partial(_autocast, _name), options=("steps",), validate=partial(_validate, _name))
