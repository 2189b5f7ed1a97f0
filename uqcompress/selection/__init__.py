"""Selectors, keyed by their Hydra config name (``selector=coverage``). A builder is ``fn(**cfg) -> Selector``.

Example:
    >>> from uqcompress.selection import SELECTORS
    >>> "coverage" in SELECTORS
    True
"""
from __future__ import annotations

from uqcompress.registry import Registry
from uqcompress.selection.base import Selector

SELECTORS = Registry("selector", package="uqcompress.selection")


def build_selector(cfg: dict) -> Selector:
    opts = {k: v for k, v in dict(cfg).items() if k != "name"}
    return SELECTORS.get(cfg["name"])(**opts)


__all__ = ["SELECTORS", "Selector", "build_selector"]
