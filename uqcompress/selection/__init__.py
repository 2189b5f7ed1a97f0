"""Selectors, keyed by their Hydra config name (``selector=coverage``). A builder is ``fn(**cfg) -> Selector``.

Example:
    >>> from uqcompress.selection import SELECTORS
    >>> "coverage" in SELECTORS
    True
"""
from __future__ import annotations

from uqcompress.registry import Registry
from uqcompress.uncertainty.options import check_options
from uqcompress.selection.base import Selector

SELECTORS = Registry("selector", package="uqcompress.selection")


def build_selector(cfg: dict) -> Selector:
    opts = {k: v for k, v in dict(cfg).items() if k != "name"}
    factory = SELECTORS.get(cfg["name"])
    check_options("selector", cfg["name"], factory, opts)
    return factory(**opts)


__all__ = ["SELECTORS", "Selector", "build_selector"]
