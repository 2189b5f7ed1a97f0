"""Compression schemes, keyed by their Hydra config name (``quant=int8``).

One registry entry (:class:`Scheme`) per scheme carries everything about it: how to apply it
(``fn(bundle, cfg, calib_x, ctx) -> ModelBundle``, a *new* bundle around a compressed copy; the baseline is never
modified; its ``info`` says what was done), the devices it runs on, whether it prunes, and how a saved predictor
rebuilds its module structure without data (``structure``; None = not deployable).

Example:
    >>> from uqcompress.compress import SCHEMES
    >>> SCHEMES.get("int8").devices, SCHEMES.get("fp16").devices, SCHEMES.get("prune_2of4").prunes
    (('cpu',), ('cpu', 'cuda'), True)
"""
from __future__ import annotations

import copy
import logging
from dataclasses import dataclass, field
from typing import Any, Callable

import torch
from torch import nn

from uqcompress.cache import fingerprint
from uqcompress.models.base import ModelBundle, module_device
from uqcompress.registry import Registry

log = logging.getLogger(__name__)

ALL_DEVICES = ("cpu", "cuda")


def by_applying(scheme: "Scheme", arch: ModelBundle, cfg: dict, example: Any) -> nn.Module:
    """Structure of a scheme that needs no data (casts, dynamic int8, pruning, layer dropping): the scheme applied to
    the untrained architecture. The saved state then overwrites every number."""
    return scheme.fn(arch, cfg, None, CompressContext(progress=False)).module


@dataclass(frozen=True)
class Scheme:
    """Everything about one compression scheme.

    Attributes:
        name: the ``quant=`` name.
        fn: ``fn(bundle, cfg, calib_x, ctx) -> ModelBundle`` applies it to a copy of ``bundle.module``.
        devices: device types its compressed module runs on (``cpu``, ``cuda``); a callable ``cfg -> tuple`` when
            it depends on the config (chains).
        prunes: it zeroes weights but keeps float storage (a chain must prune before it quantizes).
        structure: ``structure(scheme, arch, cfg, example_inputs) -> nn.Module``: the compressed module's structure
            built from the untrained architecture without data, for a saved predictor; None = not deployable.
        autocast: ``autocast(cfg) -> dtype name | None``: the dtype (``bfloat16``) the runner computes the module
            under with ``torch.autocast`` (mixed precision; weights stay as they are), None for none.
        options: the ``quant.*`` options it reads (checked before any work by :mod:`uqcompress.validate`).
        validate: ``validate(cfg)`` raising a one-line ``ValueError`` for options wrong together (chains: each step).
        skip_layers: ``skip_layers(module) -> names`` of the layers of ``module`` the scheme compresses that its
            ``quant.skip`` option can keep float (what ``python -m uqcompress.tune`` ranks and walks); None = the
            scheme has no per-layer skip.
        recipes: the ``quant.recipe`` names it accepts (:mod:`uqcompress.compress.recipes`; each recipe says which
            modes and devices it supports); empty = none.
    """

    name: str
    fn: Callable[..., ModelBundle]
    devices: tuple[str, ...] | Callable[[dict], tuple[str, ...]] = ALL_DEVICES
    prunes: bool = False
    structure: Callable[["Scheme", ModelBundle, dict, Any], nn.Module] | None = by_applying
    autocast: Callable[[dict], str | None] | None = None
    options: tuple[str, ...] | None = None
    validate: Callable[[dict], None] | None = None
    skip_layers: Callable[[nn.Module], list[str]] | None = None
    recipes: tuple[str, ...] = ()

    def __call__(self, bundle: ModelBundle, cfg: dict, calib_x: Any, ctx: "CompressContext") -> ModelBundle:
        out = self.fn(bundle, cfg, calib_x, ctx)
        if out.quant == bundle.quant:  # the scheme did not say how to rebuild itself: its own config does
            out.quant = {**dict(cfg), "name": self.name}
        dtype = self.autocast_for(out.quant)
        if dtype:
            out.info["autocast"] = dtype
        return out

    def autocast_for(self, cfg: dict) -> str | None:
        """The autocast dtype name the runner uses for this scheme's module with ``cfg`` (None: no autocast)."""
        return self.autocast(cfg) if self.autocast is not None else None

    def devices_for(self, cfg: dict) -> tuple[str, ...]:
        """Device types this scheme can run on with ``cfg``."""
        return tuple(self.devices(cfg)) if callable(self.devices) else tuple(self.devices)

    def deployable(self, cfg: dict) -> bool:
        """Whether a saved predictor can rebuild this scheme's module (see :attr:`structure`)."""
        deployable = getattr(self.fn, "deployable", None)  # chains: every step must be
        return deployable(cfg) if callable(deployable) else self.structure is not None

    def rebuild(self, arch: ModelBundle, cfg: dict, state: dict, example: Any) -> nn.Module:
        """The compressed module of a saved predictor: structure from ``arch`` (untrained), numbers from ``state``."""
        if self.structure is None:
            raise ValueError(f"quant={self.name} models cannot be rebuilt from a saved file")
        module = self.structure(self, arch, cfg, example)
        module.load_state_dict(state, strict=True)
        return module.eval()


SCHEMES = Registry("quant", package="uqcompress.compress", entry=Scheme)


@dataclass
class CompressContext:
    """Run-wide settings a scheme may need; ``runner`` runs every calibration pass (see :mod:`uqcompress.runner`)."""

    seed: int = 0
    device: str = "cpu"
    progress: bool = True
    batch_size: int = 64
    runner: Any = field(default=None)

    def __post_init__(self) -> None:
        if self.runner is None:
            from uqcompress.runner import Runner

            self.runner = Runner(self.device, progress=self.progress)


def target_device(scheme: Scheme, cfg: dict, requested: str | torch.device) -> torch.device:
    """``requested`` when the scheme runs there, else the CPU, with one log line saying so."""
    requested = torch.device(requested)
    if requested.type in scheme.devices_for(cfg):
        return requested
    log.warning("quant=%s runs on %s only (no %s kernels): the compressed model runs on the CPU; the baseline on %s",
                scheme.name, "/".join(scheme.devices_for(cfg)), requested.type, requested)
    return torch.device("cpu")


def compress(bundle: ModelBundle, cfg: dict, calib_x: Any, ctx: CompressContext | None = None) -> ModelBundle:
    """Apply the scheme ``cfg['name']`` to a copy of ``bundle`` on the device it runs on (``ctx.device`` when the
    scheme supports it, else the CPU); the result's fingerprint hashes the scheme config, the baseline fingerprint,
    the device and the calibration data."""
    ctx = ctx or CompressContext()
    scheme = SCHEMES.get(cfg["name"])
    target = target_device(scheme, cfg, ctx.device)
    if module_device(bundle.module) != target:
        bundle = bundle.with_module(copy.deepcopy(bundle.module).to(target), bundle.fingerprint)
    return scheme(bundle, cfg, calib_x, ctx)


def scheme_fingerprint(bundle: ModelBundle, cfg: dict, calib_x: Any = None) -> str:
    """Cache key of a compressed model: (baseline weights, scheme config, device type, calibration data).

    The device type is part of it: CPU and CUDA kernels round differently (half precision, int4)."""
    calib = None if calib_x is None else fingerprint(calib_x if not isinstance(calib_x, list) else list(calib_x))
    return fingerprint("compressed", bundle.fingerprint, dict(cfg), calib, module_device(bundle.module).type)


__all__ = ["SCHEMES", "CompressContext", "Scheme", "compress", "module_device", "scheme_fingerprint", "target_device"]
