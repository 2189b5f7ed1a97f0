"""Move single layers between a float model and its calibrated int8 copy without rebuilding or recalibrating.

A sensitivity ranking asks, for every int8 layer, how the model behaves with only that layer float (or only that
layer int8). Building each variant with ``quant.skip`` costs a torch.ao prepare + convert (5-10 s on
EfficientNet-Lite0, most of it packing conv weights), so the ranking swaps modules instead:

- per-layer (eager) int8: every int8 layer is a ``QuantWrapper`` (float in, float out), so a layer moves between
  the two models as is;
- torch.ao FX int8: int8 tensors flow between layers, so a float layer put into the int8 graph is wrapped in
  :class:`FloatLayer` (dequantize its input, quantize its output with the int8 layer's own output scale: what the
  next int8 op would do to it), and an int8 layer put into the float model in :class:`Int8Layer` (quantize its input
  with the scale it sees in the int8 model, dequantize its output). The float reference is the model with
  Conv-BN(-ReLU) fused (``fuse_fx``), as FX fuses them before quantizing, so every layer has the same name in both.

Per-layer int8: a swapped model *is* the ``quant.skip`` variant, bit for bit (the observers saw float activations
either way). FX: it is where the layer's edges are int8 in the ``quant.skip`` graph too (a layer between two int8
layers; the head, whose output the graph only dequantizes, returns float); where the ``quant.skip`` graph passes a
float tensor instead (the layer's input is the graph input, its output goes into ReLU6 + an add that the skip
variant rounds with their own observers), the swap keeps the full model's int8 rounding there
(``tests/tune/test_swap.py``). The ranking is defined on the swaps; the walk that follows it measures the real
``quant.skip`` models.

Example:
    >>> import torch
    >>> from uqcompress.models.base import ModelBundle
    >>> from uqcompress.compress import compress
    >>> from uqcompress.tune.swap import LayerSwap
    >>> net = torch.nn.Sequential(torch.nn.Linear(4, 8), torch.nn.ReLU(), torch.nn.Linear(8, 2)).eval()
    >>> base = ModelBundle(net, "mlp", "m", "image", 2)
    >>> q = compress(base, {"name": "int8", "mode": "fx"}, torch.randn(64, 4))
    >>> swap = LayerSwap.build(base, q, ["0", "2"], torch.randn(2, 4))
    >>> x = torch.randn(5, 4)
    >>> with swap.float_layers(["0", "2"]) as m:       # every layer float again: close to the float model
    ...     bool((m(x) - net(x)).abs().max() < 0.1)
    True
"""
from __future__ import annotations

import contextlib
import copy
import warnings
from dataclasses import dataclass
from typing import Any, Iterator, Sequence

import torch
from torch import nn

from uqcompress.compress._targets import set_submodule
from uqcompress.models.base import ModelBundle, call_module


class FloatLayer(nn.Module):
    """A float layer inside an int8 FX graph: int8 in; out int8 (rounded with ``scale``/``zero_point``, as the next
    int8 op would round it) or, with ``qdtype=None``, float (when the graph only dequantizes it: the head)."""

    def __init__(self, layer: nn.Module, scale: float, zero_point: int, qdtype: torch.dtype | None) -> None:
        super().__init__()
        self.layer = layer
        self.scale, self.zero_point, self.qdtype = float(scale), int(zero_point), qdtype

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.layer(x.dequantize() if x.is_quantized else x)
        if self.qdtype is None:
            return y  # its users call .dequantize(), which leaves a float tensor as it is
        return torch.quantize_per_tensor(y, self.scale, self.zero_point, self.qdtype)


class Int8Layer(nn.Module):
    """An int8 FX layer inside the float model: float in (quantized with the scale the layer sees in the int8
    graph), float out."""

    def __init__(self, layer: nn.Module, scale: float, zero_point: int, qdtype: torch.dtype) -> None:
        super().__init__()
        self.layer = layer
        self.scale, self.zero_point, self.qdtype = float(scale), int(zero_point), qdtype

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.layer(torch.quantize_per_tensor(x, self.scale, self.zero_point, self.qdtype))
        return out.dequantize() if out.is_quantized else out


def _qparams(module: nn.Module, names: Sequence[str], example: Any) -> dict[str, tuple]:
    """Per named layer of an FX int8 ``module``: (input scale, input zero point, input dtype, output dtype), read
    off one forward pass of ``example``; layers whose input is not a per-tensor int8 tensor are left out."""
    seen: dict[str, list] = {}
    handles = []
    for name in names:
        def pre(_m: nn.Module, args: tuple, name: str = name) -> None:
            x = args[0] if args else None
            if isinstance(x, torch.Tensor) and x.is_quantized and x.qscheme() == torch.per_tensor_affine:
                seen[name] = [float(x.q_scale()), int(x.q_zero_point()), x.dtype]

        def post(_m: nn.Module, args: tuple, out: Any, name: str = name) -> None:
            if name in seen and isinstance(out, torch.Tensor) and out.is_quantized:
                seen[name].append(out.dtype)

        layer = module.get_submodule(name)
        handles += [layer.register_forward_pre_hook(pre), layer.register_forward_hook(post)]
    try:
        with torch.inference_mode():
            call_module(module, example)
    finally:
        for h in handles:
            h.remove()
    return {k: tuple(v) for k, v in seen.items() if len(v) == 4}


@dataclass
class LayerSwap:
    """The two models and, per layer, its float and int8 versions (ready to put in the other model).

    Build with :meth:`build`; use :meth:`float_layers` (the int8 model with some layers float) and :meth:`int8_layer`
    (the float model with one layer int8). Both are context managers that put the original modules back.
    """

    float_model: nn.Module
    int8_model: nn.Module
    as_float: dict[str, nn.Module]     # what goes into the int8 model for each layer
    as_int8: dict[str, nn.Module]      # what goes into the float model for each layer
    mode: str                          # fx | per_layer
    not_ranked: dict[str, str]         # layers that cannot be swapped, and why

    @property
    def layers(self) -> list[str]:
        """The swappable layers, in model order."""
        return list(self.as_float)

    @classmethod
    def build(cls, baseline: ModelBundle, compressed: ModelBundle, layers: Sequence[str], example: Any
              ) -> "LayerSwap":
        """Pair the float ``baseline`` with its int8 copy ``compressed`` (both left untouched: the swaps work on
        copies) for ``layers``; ``example`` is a prepared input batch (for the FX input scales)."""
        int8_model = copy.deepcopy(compressed.module).eval()
        not_ranked: dict[str, str] = {}
        as_float: dict[str, nn.Module] = {}
        as_int8: dict[str, nn.Module] = {}
        if hasattr(int8_model, "graph"):  # torch.ao FX: int8 tensors between layers
            from torch.ao.quantization.quantize_fx import fuse_fx

            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                float_model = fuse_fx(copy.deepcopy(baseline.module).eval())
            present = [n for n in layers if _has(int8_model, n) and _has(float_model, n)]
            qparams = _qparams(int8_model, [n for n in present if hasattr(int8_model.get_submodule(n), "scale")],
                               example)
            for name in layers:
                q = int8_model.get_submodule(name) if name in present else None
                if q is None or not hasattr(q, "scale"):
                    not_ranked[name] = "not an int8 module in the FX graph"
                elif name not in qparams:
                    not_ranked[name] = "its input or output is not a per-tensor int8 tensor"
                else:
                    scale, zero_point, in_dtype, out_dtype = qparams[name]
                    if _only_dequantized(int8_model, name):
                        out_dtype = None
                    as_float[name] = FloatLayer(float_model.get_submodule(name), q.scale, q.zero_point, out_dtype)
                    as_int8[name] = Int8Layer(q, scale, zero_point, in_dtype)
            mode = "fx"
        else:  # per layer (eager): float in, float out on both sides
            float_model = copy.deepcopy(baseline.module).eval()
            for name in layers:
                if not (_has(int8_model, name) and _has(float_model, name)):
                    not_ranked[name] = "not found in both models"
                    continue
                as_float[name] = float_model.get_submodule(name)
                as_int8[name] = int8_model.get_submodule(name)
            mode = "per_layer"
        return cls(float_model, int8_model, as_float, as_int8, mode, not_ranked)

    @contextlib.contextmanager
    def float_layers(self, names: Sequence[str]) -> Iterator[nn.Module]:
        """The int8 model with ``names`` float (and every other layer int8)."""
        with _swapped(self.int8_model, {n: self.as_float[n] for n in names}):
            yield self.int8_model

    @contextlib.contextmanager
    def int8_layer(self, name: str) -> Iterator[nn.Module]:
        """The float model with only ``name`` int8."""
        with _swapped(self.float_model, {name: self.as_int8[name]}):
            yield self.float_model


def _only_dequantized(graph_module: nn.Module, name: str) -> bool:
    """Whether every use of FX module ``name``'s output is a ``.dequantize()`` (a float op or the output follows)."""
    for node in graph_module.graph.nodes:
        if node.op == "call_module" and node.target == name:
            return bool(node.users) and all(u.op == "call_method" and u.target == "dequantize" for u in node.users)
    return False


def _has(module: nn.Module, name: str) -> bool:
    try:
        module.get_submodule(name)
        return True
    except AttributeError:
        return False


@contextlib.contextmanager
def _swapped(root: nn.Module, replacements: dict[str, nn.Module]) -> Iterator[None]:
    old = {n: root.get_submodule(n) for n in replacements}
    try:
        for n, m in replacements.items():
            set_submodule(root, n, m)
        yield
    finally:
        for n, m in old.items():
            set_submodule(root, n, m)


__all__ = ["FloatLayer", "Int8Layer", "LayerSwap"]
