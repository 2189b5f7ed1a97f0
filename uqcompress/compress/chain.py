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

from uqcompress.compress import SCHEMES, CompressContext, scheme_fingerprint
from uqcompress.compress._targets import resolve, select_layers
from uqcompress.compress.prune import PRUNABLE
from uqcompress.measure import weight_sparsity
from uqcompress.models.base import ModelBundle

PRUNE_STEPS = ("prune_global_l1", "prune_2of4")
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
        if s["name"] in PRUNE_STEPS and quantized:
            raise ValueError(f"quant={name}: step {i} ({s['name']}) prunes after a quantization step; "
                             "put pruning steps first")
        quantized |= s["name"] not in PRUNE_STEPS and s["name"] != "none"
    return out


def _chain(name: str, bundle: ModelBundle, cfg: dict, calib_x, ctx: CompressContext) -> ModelBundle:
    cfg = resolve(name, cfg, {"steps": None})
    steps = _steps(name, cfg)
    current, pruned_names, facts, notes = bundle, [], {}, []
    for step in steps:
        if step["name"] in PRUNE_STEPS:
            names = select_layers(current, current.module, {"target": "all", "include_head": False, **step},
                                  PRUNABLE, step["name"])
            pruned_names += [n for n in names if n not in pruned_names]
        current = SCHEMES.get(step["name"])(current, step, calib_x, ctx)
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
                              **facts)


for _name in CHAIN_NAMES:
    SCHEMES.register(_name, partial(_chain, _name))
