"""MC-dropout mechanics: which modules drop, and how dropout comes back where a model lost it.

The passes themselves (batching, devices, seeding, both modes) are run by :meth:`uqcompress.runner.Runner.mc_probs`;
this module holds what makes a forward pass stochastic, for float, FX-int8 and brevitas graphs alike.

Only dropout modules are switched to train mode (BatchNorm, quantizer observers and fake-quant ranges stay frozen).
Where a model has no working dropout, dropout is put back at the right place and a log line says so:
* a torch.ao FX-converted int8 graph keeps each ``nn.Dropout`` as a ``QuantizedDropout`` placeholder that is a no-op
  even in train mode; each placeholder is revived with a hook that drops quantized activations exactly
  (kept integers unchanged, scale / (1 - p));
* a model with no dropout module at all (or a graph that lost it) gets dropout of rate ``p`` before its head.

Two modes: ``full`` runs T stochastic forward passes, the T copies stacked along the batch dimension (tensors and
dicts of tensors alike, :func:`stack_copies`); ``head`` runs the backbone once, keeps the head's input
(:func:`capture_head`) and samples dropout on the head only (about one pass for any T). Passes are seeded
(:func:`seeded`): same seed, same probabilities.

Example:
    >>> import torch
    >>> from uqcompress.models.small_cnn import SmallCNN
    >>> from uqcompress.models.base import ModelBundle
    >>> from uqcompress.runner import Runner
    >>> from uqcompress.uncertainty.mc import MCOptions
    >>> b = ModelBundle(SmallCNN().eval(), "small_cnn", "x", "image", 10, head="classifier.4")
    >>> p = Runner(progress=False).mc_probs(b, torch.rand(8, 1, 28, 28), MCOptions(samples=5, mode="head"))
    >>> p.shape, bool(p.std(0).max() > 0)
    (torch.Size([5, 8, 10]), True)
"""
from __future__ import annotations

import logging
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from typing import Any, Iterator

import torch
from torch import nn

from uqcompress.models.base import ModelBundle, get_submodule

log = logging.getLogger(__name__)

MODES = ("full", "head")
_logged: set[tuple[str, str]] = set()


def log_once(bundle: ModelBundle, msg: str, *args: Any) -> None:
    key = (bundle.fingerprint, msg % args)
    if key not in _logged:
        _logged.add(key)
        log.info(msg, *args)


@dataclass(frozen=True)
class MCOptions:
    """MC-dropout settings, read from the ``uncertainty`` config (unknown keys are ignored).

    Attributes:
        samples: T, the number of stochastic passes.
        p: dropout rate injected where the model has none (before its head); in ``head`` mode also the rate used
            when the model has no dropout module (else its last dropout module's rate, the one nearest the head).
        mode: ``full`` (T forward passes) or ``head`` (backbone once, dropout on the head only).
        seed: seeds the dropout masks.
    """

    samples: int = 30
    p: float = 0.1
    mode: str = "full"
    seed: int = 0

    def __post_init__(self) -> None:
        if not (isinstance(self.samples, int) and self.samples >= 1):
            raise ValueError(f"uncertainty.samples={self.samples!r} must be an integer >= 1")
        if not 0.0 < float(self.p) < 1.0:
            raise ValueError(f"uncertainty.p={self.p!r} must be in (0, 1)")
        if self.mode not in MODES:
            raise ValueError(f"uncertainty.mode='{self.mode}' is not one of: {', '.join(MODES)}")

    @classmethod
    def from_options(cls, options: dict | None) -> "MCOptions":
        o = {k: v for k, v in (options or {}).items() if k in cls.__dataclass_fields__ and v is not None}
        if "samples" in o:
            o["samples"] = int(o["samples"])
        return cls(**o)

    def key(self) -> dict:
        return asdict(self)


# ---- dropout that also works on quantized activations ---------------------------------------------------------------
def dropout(x: torch.Tensor, p: float) -> torch.Tensor:
    """Inverted dropout at rate ``p`` (global RNG) on a float or per-tensor-quantized tensor.

    Quantized: dropped entries become the zero point, kept integers are unchanged and the scale becomes
    scale / (1 - p), so the dequantized result is exactly dropout of the dequantized input (no clipping).
    The mask is ``rand >= p`` (several times faster on CPU than ``bernoulli_``, same distribution).
    """
    if p <= 0:
        return x
    if not x.is_quantized:
        keep = torch.rand(x.shape, device=x.device) >= p
        return x * keep / (1.0 - p)
    if x.qscheme() not in (torch.per_tensor_affine, torch.per_tensor_symmetric):
        raise ValueError(f"MC-dropout on a quantized activation needs per-tensor quantization, got {x.qscheme()}")
    ints = x.int_repr()
    keep = torch.rand(ints.shape, device=ints.device) >= p
    zp = x.q_zero_point()
    out = ints * keep if zp == 0 else torch.where(keep, ints, torch.full_like(ints, zp))
    return torch._make_per_tensor_quantized_tensor(out, x.q_scale() / (1.0 - p), zp)


def _is_placeholder(m: nn.Module) -> bool:
    from torch.ao.nn.quantized import Dropout as QuantizedDropout

    return isinstance(m, QuantizedDropout)


def dropout_modules(module: nn.Module) -> tuple[list[tuple[str, nn.Module]], list[tuple[str, nn.Module]]]:
    """(live dropout modules, no-op quantized placeholders), each as (name, module), rate > 0 only."""
    live, dead = [], []
    for name, m in module.named_modules():
        if isinstance(m, nn.modules.dropout._DropoutNd) and m.p > 0:
            (dead if _is_placeholder(m) else live).append((name, m))
    return live, dead


def head_module(bundle: ModelBundle) -> nn.Module:
    """The classifier head submodule ``bundle.head``; a one-line error when the model names none."""
    head = get_submodule(bundle.module, bundle.head)
    if head is None:
        raise ValueError(f"model '{bundle.name}' names no classifier head submodule (ModelBundle.head="
                         f"{bundle.head!r}); MC-dropout injection, head mode and feature scorers need one")
    return head


@contextmanager
def stochastic(bundle: ModelBundle, p: float) -> Iterator[None]:
    """Dropout on, everything else frozen, for the duration of the block; hooks and modes restored after."""
    module = bundle.module.eval()
    live, dead = dropout_modules(module)
    handles = []
    try:
        for _, m in live:
            m.train()
        for _, m in dead:
            handles.append(m.register_forward_hook(lambda mod, args, out: dropout(args[0], mod.p)))
        if dead:
            log_once(bundle, "MC-dropout on %s: the converted graph keeps %d dropout module(s) (%s) as no-op "
                     "QuantizedDropout placeholders; revived them as quantized dropout", bundle.label, len(dead),
                     ", ".join(f"{n} p={m.p:g}" for n, m in dead))
        if not live and not dead:
            head = head_module(bundle)
            handles.append(head.register_forward_pre_hook(lambda mod, args: (dropout(args[0], p), *args[1:])))
            scheme = bundle.info.get("scheme")
            why = (f"the {scheme} graph has no dropout module (lost in conversion, or the baseline had none)"
                   if scheme not in (None, "none") else "the model has no dropout module")
            log_once(bundle, "MC-dropout on %s: %s; injecting dropout p=%g before its head '%s'", bundle.label,
                     why, p, bundle.head)
        yield
    finally:
        for h in handles:
            h.remove()
        for _, m in live:
            m.eval()


# ---- helpers of the runner's MC passes -----------------------------------------------------------------------
def stack_copies(inputs: Any, copies: int) -> Any:
    """``copies`` copies of a batch stacked along dim 0: a tensor, or every tensor of a dict (others passed through)."""
    if copies == 1:
        return inputs
    if isinstance(inputs, torch.Tensor):
        return torch.cat([inputs] * copies, dim=0)
    if isinstance(inputs, dict):
        return {k: stack_copies(v, copies) for k, v in inputs.items()}
    raise TypeError(f"cannot stack MC copies of model inputs of type {type(inputs).__name__}; "
                    "expected a tensor or a dict of tensors")


@contextmanager
def seeded(seed: int, device: torch.device) -> Iterator[None]:
    """Dropout masks drawn from ``seed`` inside the block; the global RNG (CPU and ``device``) is restored after."""
    devices = [device.index or 0] if device.type == "cuda" else []
    with torch.random.fork_rng(devices=devices):
        torch.manual_seed(seed)
        yield


@contextmanager
def capture_head(bundle: ModelBundle, store: dict) -> Iterator[None]:
    """Record the head's raw input (``store['in']``, possibly quantized) and output (``store['out']``)."""
    head = head_module(bundle)

    def pre(mod: nn.Module, args: tuple) -> None:
        store["in"] = args[0]

    def post(mod: nn.Module, args: tuple, out: Any) -> None:
        store["out"] = out

    h1, h2 = head.register_forward_pre_hook(pre), head.register_forward_hook(post)
    try:
        yield
    finally:
        h1.remove()
        h2.remove()


def check_feature(bundle: ModelBundle, f: Any) -> torch.Tensor:
    """``f`` (the head's input) when it is a (batch, features) tensor; else a one-line error."""
    if not isinstance(f, torch.Tensor) or f.dim() != 2:
        shape = tuple(f.shape) if isinstance(f, torch.Tensor) else type(f).__name__
        raise ValueError(f"the input of head '{bundle.head}' of model '{bundle.name}' has shape {shape}; "
                         "feature scorers and head-mode MC-dropout need a (batch, features) input")
    return f


def head_rate(bundle: ModelBundle, opts: MCOptions) -> float:
    """Head-mode dropout rate: the model's last dropout module (nearest its head), else ``opts.p``."""
    live, dead = dropout_modules(bundle.module)
    names = {n for n, _ in live + dead}
    last = [m for n, m in bundle.module.named_modules() if n in names]
    return float(last[-1].p) if last else float(opts.p)


def check_head_is_last(bundle: ModelBundle, head_out: Any, logits: torch.Tensor) -> None:
    """Head mode resamples only the head: refuse a model whose head output is not its logits."""
    ok = isinstance(head_out, torch.Tensor) and head_out.shape == logits.shape and torch.allclose(
        head_out.dequantize() if head_out.is_quantized else head_out.float(), logits.float(), atol=1e-5, rtol=1e-4)
    if not ok:
        raise ValueError(f"uncertainty.mode=head needs the output of head '{bundle.head}' of model '{bundle.name}' "
                         "to be the logits, and it is not; use uncertainty.mode=full")
