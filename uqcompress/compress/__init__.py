"""Compression schemes, keyed by their Hydra config name (``quant=int8``).

A scheme is ``fn(bundle: ModelBundle, cfg: dict, calib_x, ctx: CompressContext) -> ModelBundle``: it returns a
*new* bundle around a compressed copy of the module (the baseline is never modified), whose ``info`` says what
was done (``scheme``, ``bits``, ``simulated``, ...).

Example:
    >>> from uqcompress.compress import SCHEMES
    >>> "int8" in SCHEMES and "none" in SCHEMES
    True
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from uqcompress.cache import fingerprint
from uqcompress.models.base import ModelBundle
from uqcompress.registry import Registry

SCHEMES = Registry("quant", package="uqcompress.compress")


@dataclass
class CompressContext:
    seed: int = 0
    device: str = "cpu"
    progress: bool = True
    batch_size: int = 64


def compress(bundle: ModelBundle, cfg: dict, calib_x: Any, ctx: CompressContext | None = None) -> ModelBundle:
    """Apply the scheme ``cfg['name']`` to a copy of ``bundle``; the result's fingerprint hashes the scheme config,
    the baseline fingerprint and the calibration data."""
    return SCHEMES.get(cfg["name"])(bundle, cfg, calib_x, ctx or CompressContext())


def scheme_fingerprint(bundle: ModelBundle, cfg: dict, calib_x: Any = None) -> str:
    """Cache key of a compressed model: (baseline weights, scheme config, calibration data)."""
    calib = None if calib_x is None else fingerprint(calib_x if not isinstance(calib_x, list) else list(calib_x))
    return fingerprint("compressed", bundle.fingerprint, dict(cfg), calib)


__all__ = ["SCHEMES", "CompressContext", "compress", "scheme_fingerprint"]
