"""Rank the int8 layers of a model by how much each one moves the answers, on a ranking subset.

Two rankings, both measured against the baseline's logits on the first ``tune.ranking_samples`` calibration samples
(KL(baseline ‖ model) in nats, and flips), both by swapping single layers (:mod:`uqcompress.tune.swap`: one
calibration, no rebuild):

- ``alone``: the float model with only this layer int8: the error the layer causes on its own (score: its KL);
- ``revert``: the int8 model with only this layer float: what keeping it float recovers (score: the int8 model's KL
  minus this model's KL; NNCF's ranking for ``quantize_with_accuracy_control``).

Ties break on flips, then on model order. The whole ranking is cached (kind ``sensitivity``) and each swapped
model's logits are cached and logged like any other (kind ``logits``), so a rerun with another budget ranks nothing.

Example:
    >>> from uqcompress.tune.sensitivity import Sensitivity
    >>> s = Sensitivity(layers=["a", "b", "c"], samples=64, full={"kl": 0.3, "flips": 0.05},
    ...                 alone={"a": {"kl": 0.01, "flips": 0.0}, "b": {"kl": 0.2, "flips": 0.03},
    ...                        "c": {"kl": 0.05, "flips": 0.01}},
    ...                 revert={"a": {"kl": 0.29, "flips": 0.05}, "b": {"kl": 0.12, "flips": 0.02},
    ...                         "c": {"kl": 0.22, "flips": 0.03}})
    >>> s.order("alone"), s.order("revert")
    (['b', 'c', 'a'], ['b', 'c', 'a'])
"""
from __future__ import annotations

import logging
from dataclasses import asdict, dataclass
from typing import Any, Callable

import torch

from uqcompress import metrics as M
from uqcompress.cache import cached, fingerprint
from uqcompress.models.base import ModelBundle
from uqcompress.tune.swap import LayerSwap

log = logging.getLogger("uqcompress.tune")

RANKINGS = ("revert", "alone")


@dataclass
class Sensitivity:
    """Per-layer measures on the ranking subset (``{"kl", "flips"}`` per layer; ``full``: the int8 model's own)."""

    layers: list[str]
    samples: int
    full: dict[str, float]
    alone: dict[str, dict[str, float]]
    revert: dict[str, dict[str, float]]

    def scores(self, ranking: str) -> dict[str, float]:
        """Higher = more sensitive: ``alone`` = the KL the layer causes alone; ``revert`` = the KL keeping it float
        removes."""
        if ranking == "alone":
            return {n: self.alone[n]["kl"] for n in self.layers}
        if ranking == "revert":
            return {n: self.full["kl"] - self.revert[n]["kl"] for n in self.layers}
        raise ValueError(f"unknown ranking '{ranking}'; rankings: {', '.join(RANKINGS)}")

    def flip_scores(self, ranking: str) -> dict[str, float]:
        if ranking == "alone":
            return {n: self.alone[n]["flips"] for n in self.layers}
        return {n: self.full["flips"] - self.revert[n]["flips"] for n in self.layers}

    def order(self, ranking: str) -> list[str]:
        """The layers, most sensitive first."""
        kl, fl = self.scores(ranking), self.flip_scores(ranking)
        pos = {n: i for i, n in enumerate(self.layers)}
        return sorted(self.layers, key=lambda n: (-kl[n], -fl[n], pos[n]))

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def _measure(base_logits: torch.Tensor, logits: torch.Tensor, labels: torch.Tensor) -> dict[str, float]:
    f = M.flips(base_logits.softmax(-1), logits.softmax(-1), labels)
    return {"kl": M.kl_from_logits(base_logits, logits), "flips": f["flips"]}


def rank_layers(swap: LayerSwap, compressed: ModelBundle, subset: Any, base_logits: torch.Tensor,
                logits: Callable[[ModelBundle, str], torch.Tensor], rankings: tuple[str, ...] = RANKINGS
                ) -> Sensitivity:
    """Measure every swappable layer of ``swap`` alone and reverted on ``subset`` (a Split with labels), against
    ``base_logits`` (the baseline's logits on it). ``logits(bundle, what)`` runs a model on the subset (the caller
    routes it through the runner's cache); ``compressed`` names the int8 model (its fingerprint keys the cache)."""
    layers = swap.layers
    key = fingerprint("sensitivity", compressed.fingerprint, swap.mode, layers, subset.fingerprint(), list(rankings))

    def compute() -> dict[str, Any]:
        y = subset.y
        full = _measure(base_logits, logits(compressed, "int8"), y)
        out: dict[str, Any] = {"layers": layers, "samples": len(subset), "full": full, "alone": {}, "revert": {}}
        n = len(layers)
        for i, name in enumerate(layers):
            if "alone" in rankings:
                with swap.int8_layer(name) as module:
                    b = compressed.with_module(module, fingerprint(compressed.fingerprint, "int8 alone", name),
                                               scheme=f"{compressed.info.get('scheme', 'int8')} {name} alone")
                    out["alone"][name] = _measure(base_logits, logits(b, f"alone {name}"), y)
            if "revert" in rankings:
                with swap.float_layers([name]) as module:
                    b = compressed.with_module(module, fingerprint(compressed.fingerprint, "fp32", [name]),
                                               scheme=f"{compressed.info.get('scheme', 'int8')} {name} fp32")
                    out["revert"][name] = _measure(base_logits, logits(b, f"revert {name}"), y)
            log.info("tune: ranked layer %d/%d %s:%s%s", i + 1, n, name,
                     f" alone KL {out['alone'][name]['kl']:.5f} flips {out['alone'][name]['flips']:.4f};"
                     if name in out["alone"] else "",
                     f" reverted KL {out['revert'][name]['kl']:.5f} flips {out['revert'][name]['flips']:.4f}"
                     if name in out["revert"] else "")
        return out

    payload = cached("sensitivity", key, compute, log=log.debug, model=compressed.label, split="ranking")
    empty = {n: {"kl": float("nan"), "flips": float("nan")} for n in payload["layers"]}
    return Sensitivity(layers=list(payload["layers"]), samples=int(payload["samples"]), full=dict(payload["full"]),
                       alone=dict(payload["alone"]) or empty, revert=dict(payload["revert"]) or empty)


__all__ = ["RANKINGS", "Sensitivity", "rank_layers"]
