"""``quant.recipe=[peg]``: per-embedding-group output ranges for static int8 per layer (Bondarenko et al. 2021,
"Understanding and Overcoming the Challenges of Efficient Transformer Quantization", EMNLP).

Why: a BERT's FFN output layer writes the residual stream, whose few "outlier" dimensions reach +-200 while the rest
stay near +-1. One per-tensor output scale then spends its 256 levels on the outliers and rounds every other
dimension to a step of ~1.5. Measured on all-MiniLM-L6-v2 / TREC (calibration rows): quantizing only the six FFN
output layers flips 17% of the answers, and of their three int8 roundings the *output* one alone flips 19% (input
4.3%, weights 0.6%).

What: each targeted ``nn.Linear`` becomes a :class:`GroupedLinear`: its output channels, sorted by the range they take
on the calibration split (one fp32 pass of the baseline), are cut into ``quant.peg.groups`` equal groups, each an
``nn.Linear`` of its own rows that static int8 quantizes with its own output scale (the outlier channels share a
group; the others get fine steps). Everything stays int8 (weights, activations); the cost is ``groups`` smaller
matmuls per layer and the re-ordering of the output. The group sizes depend only on the layer's width, and the
calibration-dependent channel order is a buffer, so a saved model rebuilds the structure and loads the order.

No library serves this: torch.ao eager mode quantizes one output scale per module, torchao's SmoothQuant moves
*input* outliers into the weights for its dynamic-activation Linear (measured here on the FFN inputs as well:
alpha 0.5 raised the calibration flips 0.06 -> 0.12, alpha 0.75 left them unchanged), and brevitas' per-channel
output quantization has no int8 kernel.

Example:
    >>> import torch
    >>> from uqcompress.compress.peg import GroupedLinear
    >>> lin = torch.nn.Linear(4, 6)
    >>> g = GroupedLinear.like(lin, groups=3)
    >>> g.set_order(torch.tensor([5, 0, 1, 2, 3, 4]), lin.weight, lin.bias)
    >>> x = torch.randn(2, 4)
    >>> torch.allclose(g(x), lin(x)), [p.out_features for p in g.parts]
    (True, [2, 2, 2])
"""
from __future__ import annotations

import fnmatch
import logging
import time
from typing import Any

import torch
from torch import nn

from uqcompress.models.base import ModelBundle, call_module

log = logging.getLogger(__name__)

PEG_DEFAULTS = {"groups": 8, "layers": None}


def peg_options(opts: Any) -> dict[str, Any]:
    """``quant.peg`` overlaid on :data:`PEG_DEFAULTS`; one-line ``ValueError`` on a bad option."""
    from uqcompress.compress.recipes import recipe_options

    out = recipe_options("peg", opts, PEG_DEFAULTS)
    g = out["groups"]
    if isinstance(g, bool) or not isinstance(g, int) or g < 2:
        raise ValueError(f"quant.peg.groups={g!r} must be a whole number >= 2")
    layers = out["layers"]
    if layers is not None and (isinstance(layers, str) or not all(isinstance(p, str) for p in layers)):
        raise ValueError(f"quant.peg.layers={layers!r} must be null (every Linear) or a list of layer-name "
                         "patterns, e.g. ['encoder.encoder.layer.?.output.dense']")
    if layers is not None:
        out["layers"] = list(layers)
    return out


def _sizes(out_features: int, groups: int) -> list[int]:
    g = min(groups, out_features)
    return [out_features // g + (1 if i < out_features % g else 0) for i in range(g)]


def _linear(part: nn.Module) -> nn.Module:
    """The Linear inside a part (observed parts are wrapped in a ``QuantWrapper``)."""
    return part.module if hasattr(part, "module") and not hasattr(part, "in_features") else part


class GroupedLinear(nn.Module):
    """An ``nn.Linear`` split into groups of output channels (``parts``), concatenated and put back in order."""

    def __init__(self, in_features: int, out_features: int, groups: int, bias: bool = True) -> None:
        super().__init__()
        self.in_features, self.out_features = in_features, out_features
        self.parts = nn.ModuleList(nn.Linear(in_features, s, bias=bias) for s in _sizes(out_features, groups))
        self.register_buffer("order", torch.arange(out_features))  # the channel of each grouped output position
        self.register_buffer("inverse", torch.arange(out_features))

    @classmethod
    def like(cls, lin: nn.Linear, groups: int) -> "GroupedLinear":
        """The structure for ``lin`` (weights, order: identity until :meth:`set_order`)."""
        g = cls(lin.in_features, lin.out_features, groups, bias=lin.bias is not None)
        g.set_order(torch.arange(lin.out_features), lin.weight, lin.bias)
        return g

    @torch.no_grad()
    def set_order(self, order: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None) -> None:
        """Put output channels ``order[i]`` at grouped position ``i`` and copy their rows of ``weight`` / ``bias``
        into the parts (before observers run: an observed part keeps its ``QuantWrapper``)."""
        self.order.copy_(order)
        self.inverse.copy_(torch.argsort(order))
        start = 0
        for part in self.parts:
            lin = _linear(part)
            idx = order[start:start + lin.out_features]
            lin.weight.copy_(weight[idx])
            if bias is not None:
                lin.bias.copy_(bias[idx])
            start += lin.out_features

    @torch.no_grad()
    def add_bias(self, delta: torch.Tensor) -> None:
        """Add ``delta`` (one value per output channel, original order) to the parts' biases."""
        start = 0
        for part in self.parts:
            lin = _linear(part)
            lin.bias.add_(delta[self.order[start:start + lin.out_features]].to(lin.bias.dtype))
            start += lin.out_features

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.cat([p(x) for p in self.parts], dim=-1).index_select(-1, self.inverse)


def peg_layers(module: nn.Module, patterns: list[str] | None, skip: list[str]) -> list[str]:
    """The ``nn.Linear`` layers the recipe groups: those matching ``patterns`` (all when None), not kept fp32;
    one-line ``ValueError`` for a pattern that matches no Linear layer."""
    linears = [n for n, m in module.named_modules() if type(m) is nn.Linear]
    if patterns is not None:
        unused = [p for p in patterns if not any(fnmatch.fnmatchcase(n, p) for n in linears)]
        if unused:
            raise ValueError(f"quant.peg.layers pattern(s) {unused} match no Linear layer; layers look like: "
                             f"{', '.join(linears[:4])}{', ...' if len(linears) > 4 else ''}")
        linears = [n for n in linears if any(fnmatch.fnmatchcase(n, p) for p in patterns)]
    return [n for n in linears if n not in set(skip) and module.get_submodule(n).out_features > 1]


def grouped_structure(model: nn.Module, names: list[str], groups: int) -> nn.Module:
    """``model`` (in place) with each Linear named in ``names`` replaced by a :class:`GroupedLinear` (identity
    order: same outputs); :func:`order_groups` sets the calibrated order."""
    for name in names:
        model.set_submodule(name, GroupedLinear.like(model.get_submodule(name), groups))
    return model


@torch.no_grad()
def output_ranges(bundle: ModelBundle, names: list[str], calib: Any, batch_size: int) -> dict[str, torch.Tensor]:
    """Per output channel, max - min of each named Linear of the baseline over the calibration rows (fp32)."""
    lo: dict[str, torch.Tensor] = {}
    hi: dict[str, torch.Tensor] = {}

    def hook(name: str):
        def record(_m: nn.Module, _i: Any, out: torch.Tensor) -> None:
            flat = out.detach().float().flatten(0, -2)
            a, b = flat.amin(0), flat.amax(0)
            lo[name] = a if name not in lo else torch.minimum(lo[name], a)
            hi[name] = b if name not in hi else torch.maximum(hi[name], b)
        return record

    module = bundle.module.eval()
    handles = [module.get_submodule(n).register_forward_hook(hook(n)) for n in names]
    try:
        for i in range(0, len(calib), batch_size):
            call_module(module, bundle.prepare(calib[i:i + batch_size]))
    finally:
        for h in handles:
            h.remove()
    return {n: hi[n] - lo[n] for n in names if n in hi}


def order_groups(bundle: ModelBundle, prepared: nn.Module, calib: Any, batch_size: int, cost: Any) -> None:
    """Order the output channels of every :class:`GroupedLinear` of the observed ``prepared`` by their calibration
    range (widest first), before its observers run; ``cost`` (:class:`uqcompress.compress.recipes.Cost`) counts the
    fp32 pass."""
    t0 = time.perf_counter()
    names = [n for n, m in prepared.named_modules() if isinstance(m, GroupedLinear)]
    ranges = output_ranges(bundle, names, calib, batch_size)
    for name in names:
        lin = bundle.module.get_submodule(name)
        order = torch.argsort(ranges[name], descending=True, stable=True)
        prepared.get_submodule(name).set_order(order, lin.weight, lin.bias)
    cost.samples += len(calib)
    cost.seconds += time.perf_counter() - t0
    if names:
        spread = max(float(r.max() / r.median().clamp(min=1e-12)) for r in ranges.values())
        log.info("quant.recipe=peg: %d Linear layers grouped; widest channel range / median up to %.0fx",
                 len(names), spread)


__all__ = ["PEG_DEFAULTS", "GroupedLinear", "grouped_structure", "order_groups", "output_ranges", "peg_layers",
           "peg_options"]
