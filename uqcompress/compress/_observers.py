"""Observer statistics of static int8, shared by every ``quant.skip`` variant of one model.

Calibration runs the *observed* model in float: observers record the activations they see and change nothing, and
torch.ao FX fuses Conv-BN-ReLU whatever the qconfig. So the statistics an observer records do not depend on which
layers are kept fp32: a variant with ``quant.skip`` set needs no calibration pass of its own when the fully quantized
model's observers have been recorded once. :func:`observer_states` reads them, keyed by what each observer watches
(FX: the graph node whose output it observes, and its class; eager per-layer mode: its module name), and
:func:`load_observer_states` copies them into another prepared variant. The converted model is then the same,
bit for bit, as one calibrated on its own (``tests/compress/test_observers.py`` checks both modes).

This is what makes a layer-by-layer search cheap (``python -m uqcompress.tune``): on EfficientNet-Lite0 one
calibration pass over 512 images serves every one of the 51 single-layer variants.

Example:
    >>> import torch
    >>> from uqcompress.compress.int8_static import prepared_int8
    >>> from uqcompress.compress._observers import load_observer_states, observer_states
    >>> net = torch.nn.Sequential(torch.nn.Linear(4, 8), torch.nn.ReLU(), torch.nn.Linear(8, 2)).eval()
    >>> x = torch.randn(64, 4)
    >>> full, _ = prepared_int8(net, "x86", (x[:2],), "fx")
    >>> _ = full(x)                                            # the one calibration pass
    >>> variant, convert = prepared_int8(net, "x86", (x[:2],), "fx", skip=["2"])
    >>> load_observer_states(variant, observer_states(full))   # nothing missing: no pass needed
    []
"""
from __future__ import annotations

from typing import Iterator

import torch
from torch import nn


def _is_observer(module: nn.Module) -> bool:
    from torch.ao.quantization.observer import ObserverBase

    return isinstance(module, ObserverBase)


def _watchers(prepared: nn.Module) -> Iterator[tuple[str, nn.Module]]:
    """(name of the graph node whose output it watches, module) for each ``call_module`` node of an FX graph."""
    for node in prepared.graph.nodes:
        if node.op == "call_module" and node.args and hasattr(node.args[0], "name"):
            yield node.args[0].name, prepared.get_submodule(node.target)


def _is_fake_quantizer(module: nn.Module) -> bool:
    from torch.ao.quantization import FakeQuantize

    return isinstance(module, FakeQuantize)


def _observers(prepared: nn.Module, fake_quantizers: bool = False) -> dict[str, nn.Module]:
    """Every observer of a prepared model under a key that names what it observes. ``fake_quantizers``: instead, the
    observer inside each activation fake quantizer of an FX QAT graph, under the key the PTQ graph's observer of the
    same node has (so plain int8's statistics load into a QAT graph: ``recipes.start_from_ptq``)."""
    if getattr(prepared, "graph", None) is None:  # eager mode (per layer): observers sit at stable module names
        return {name: m for name, m in prepared.named_modules() if _is_observer(m)}
    out: dict[str, nn.Module] = {}
    for watched, module in _watchers(prepared):
        if fake_quantizers:
            if not _is_fake_quantizer(module):
                continue
            module = module.activation_post_process
        if _is_observer(module):
            out[f"{watched}:{type(module).__name__}"] = module
    return out


def activation_fake_quantizers(prepared: nn.Module) -> list[nn.Module]:
    """The activation fake quantizers of an FX QAT graph, those :func:`_observers` keys with ``fake_quantizers``
    (weight fake quantizers sit inside the QAT modules)."""
    return [m for _, m in _watchers(prepared) if _is_fake_quantizer(m)]


def observer_states(prepared: nn.Module) -> dict[str, dict[str, torch.Tensor]]:
    """The recorded statistics (buffers) of every observer of ``prepared``, keyed as :func:`load_observer_states`
    expects; plain tensors (storable with ``torch.save``, loadable with ``weights_only=True``)."""
    return {k: {n: b.detach().clone() for n, b in m.named_buffers(recurse=False)}
            for k, m in _observers(prepared).items()}


def load_observer_states(prepared: nn.Module, states: dict[str, dict[str, torch.Tensor]],
                         fake_quantizers: bool = False) -> list[str]:
    """Copy ``states`` into the observers of ``prepared`` (with ``fake_quantizers``: instead, those inside its activation
    fake quantizers, see :func:`_observers`); returns the keys of observers that have no recorded state (then
    nothing is copied and the caller calibrates). An empty list means ``prepared`` is calibrated."""
    observers = _observers(prepared, fake_quantizers)
    missing = [k for k, m in observers.items()
               if k not in states or set(states[k]) != {n for n, _ in m.named_buffers(recurse=False)}]
    if missing:
        return missing
    for k, m in observers.items():
        for name, value in states[k].items():
            m._buffers[name] = value.clone()  # shapes differ from an un-run observer's: replace, not copy_
    return []


__all__ = ["activation_fake_quantizers", "load_observer_states", "observer_states"]
