"""Which layers a scheme touches, and the scheme's resolved config.

``quant.target``: ``all`` (every layer of the scheme's types), ``attention`` (Linear layers inside attention blocks:
q/k/v/out projections) or ``ffn`` (the MLP's intermediate/output dense layers), decided by module-name patterns that
fit BERT/MiniLM (``attention.self.query``, ``attention.output.dense``, ``intermediate.dense``, ``output.dense``),
LLaMA-style decoders (``self_attn.q_proj``, ``mlp.gate_proj``), ViT/timm (``attn.qkv``, ``mlp.fc1``) and DistilBERT
(``attention.q_lin``, ``ffn.lin1``). The classifier head (``bundle.head``) is left alone unless
``quant.include_head=true``.

Example:
    >>> from uqcompress.compress._targets import block_kind
    >>> block_kind("bert.encoder.layer.0.attention.output.dense"), block_kind("bert.encoder.layer.0.output.dense")
    ('attention', 'ffn')
    >>> block_kind("model.layers.3.mlp.down_proj"), block_kind("classifier") is None
    ('ffn', True)
"""
from __future__ import annotations

import re
from typing import Any

from torch import nn

from uqcompress.models.base import ModelBundle

TARGETS = ("all", "attention", "ffn")
_ATTENTION = re.compile(r"(^|\.)(attention|self_attn|self_attention|attn|cross_attn|encoder_attn)(\.|$)")
_FFN = re.compile(r"(^|\.)(intermediate|mlp|ffn|feed_forward|feedforward)(\.|$)|(^|\.)output\.dense$")


def block_kind(name: str) -> str | None:
    """``attention`` / ``ffn`` for a layer inside such a transformer block (by its qualified name), else None."""
    if _ATTENTION.search(name):
        return "attention"
    if _FFN.search(name):
        return "ffn"
    return None


def in_head(name: str, head: str | None) -> bool:
    """True when ``name`` is the classifier head or inside it."""
    return bool(head) and (name == head or name.startswith(f"{head}."))


def resolve(scheme: str, cfg: dict, defaults: dict[str, Any]) -> dict[str, Any]:
    """``defaults`` overlaid with ``cfg``; an unknown option fails with one line naming it and the choices.

    The resolved dict is what a scheme fingerprints, so changing a code default also changes the cache key.
    """
    allowed = set(defaults) | {"name"}
    unknown = sorted(set(cfg) - allowed)
    if unknown:
        options = ", ".join(sorted(allowed - {"name"})) or "none"
        raise ValueError(f"quant={scheme}: unknown option(s) {unknown}; options: {options}")
    return {**defaults, **{k: v for k, v in cfg.items()}}


def select_layers(bundle: ModelBundle, module: nn.Module, cfg: dict, types: tuple[type, ...], scheme: str) -> list[str]:
    """Qualified names of the layers of ``types`` that ``cfg['target']`` / ``cfg['include_head']`` select.

    Raises a one-line ``ValueError`` for an unknown target or when nothing matches (naming model, scheme and fix).
    """
    target = cfg.get("target", "all")
    if target not in TARGETS:
        raise ValueError(f"quant.target='{target}' is not one of: {', '.join(TARGETS)}")
    include_head = bool(cfg.get("include_head", False))
    names = []
    for name, layer in module.named_modules():
        if not isinstance(layer, types) or not name:
            continue
        if not include_head and in_head(name, bundle.head):
            continue
        if target != "all" and block_kind(name) != target:
            continue
        names.append(name)
    if not names:
        kinds = "/".join(t.__name__ for t in types)
        hint = ("use quant.target=all" if target != "all"
                else "its only such layer is the head: set quant.include_head=true" if bundle.head else
                "this scheme does not apply to it")
        raise ValueError(f"quant={scheme}: model '{bundle.name}' has no {kinds} layer matching "
                         f"quant.target={target}{'' if include_head else ' (head excluded)'}; {hint}")
    return names


def set_submodule(root: nn.Module, name: str, new: nn.Module) -> None:
    """Replace the submodule at qualified ``name`` with ``new``."""
    parent, _, child = name.rpartition(".")
    setattr(root.get_submodule(parent) if parent else root, child, new)
