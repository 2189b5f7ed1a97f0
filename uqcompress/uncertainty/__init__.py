"""Uncertainty scorers, keyed by their Hydra config name (``uncertainty=msp``). Higher confidence = more confident.

A builder is ``fn(cfg: dict) -> Scorer``.

Example:
    >>> from uqcompress.uncertainty import SCORERS
    >>> "msp" in SCORERS
    True
"""
from __future__ import annotations

from uqcompress.registry import Registry
from uqcompress.uncertainty.options import check_options
from uqcompress.uncertainty.base import Outputs, Scorer

SCORERS = Registry("uncertainty", package="uqcompress.uncertainty")


def build_scorer(cfg: dict) -> Scorer:
    opts = {k: v for k, v in dict(cfg).items() if k != "name"}
    factory = SCORERS.get(cfg["name"])
    check_options("uncertainty", cfg["name"], factory, opts)
    return factory(**opts)


__all__ = ["SCORERS", "Outputs", "Scorer", "build_scorer"]
