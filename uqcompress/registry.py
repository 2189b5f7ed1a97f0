"""One registry type for every pluggable stage, keyed by the Hydra config name.

``model=resnet50`` on the command line and ``MODELS.get("resnet50")`` in Python are the same word. A registry may wrap
what is registered in an *entry* type that carries everything about the plugin (a compression scheme's devices and
how to rebuild it; a model's bare architecture), so no second table is kept in sync by hand.

Example:
    >>> from uqcompress.registry import Registry
    >>> SCORERS = Registry("uncertainty")
    >>> @SCORERS.register("msp")
    ... def msp(logits): return logits.softmax(-1).max(-1).values
    >>> SCORERS.get("msp") is msp
    True
    >>> SCORERS.get("nope")
    Traceback (most recent call last):
    ...
    uqcompress.registry.UnknownNameError: unknown uncertainty 'nope'; choose one of: msp
"""
from __future__ import annotations

import importlib
import pkgutil
from typing import Any, Callable, Iterator, TypeVar

T = TypeVar("T")


class UnknownNameError(KeyError):
    """Raised for a config name that no implementation is registered under."""

    def __str__(self) -> str:  # KeyError quotes its message; we want one plain line
        return str(self.args[0])


class Registry:
    """Maps config names to implementations (classes or factory functions).

    Args:
        kind: the config group this registry serves (``model``, ``quant``, ...), used in error messages.
        package: optional dotted package whose modules are imported on first lookup, so that adding an
            implementation is one new file with a ``@REGISTRY.register(...)`` decorator, no import list to edit.
    """

    def __init__(self, kind: str, package: str | None = None, entry: Callable[..., Any] | None = None) -> None:
        self.kind = kind
        self.package = package
        self.entry = entry
        self._items: dict[str, Any] = {}
        self._loaded = package is None

    def register(self, name: str, obj: T | None = None, **facts: Any) -> Any:
        """Register ``obj`` under ``name``; usable as ``@register("name", **facts)``.

        With an ``entry`` type, what is stored is ``entry(name=name, fn=obj, **facts)`` (the decorator still returns
        ``obj``); without one, ``facts`` are not allowed.
        """
        if facts and self.entry is None:
            raise TypeError(f"the {self.kind} registry has no entry type; it takes no facts ({sorted(facts)})")

        def deco(o: T) -> T:
            item = self.entry(name=name, fn=o, **facts) if self.entry is not None else o
            old = self._items.get(name)
            if old is not None and getattr(old, "fn", old) is not o:
                raise ValueError(f"{self.kind} '{name}' is registered twice")
            self._items[name] = item
            return o

        return deco(obj) if obj is not None else deco

    def _load(self) -> None:
        if self._loaded:
            return
        self._loaded = True
        pkg = importlib.import_module(self.package)
        for info in pkgutil.iter_modules(pkg.__path__):
            if not info.name.startswith("_"):
                importlib.import_module(f"{self.package}.{info.name}")

    def get(self, name: str) -> Any:
        """The implementation registered as ``name``; a one-line error listing the choices otherwise."""
        self._load()
        try:
            return self._items[name]
        except KeyError:
            raise UnknownNameError(
                f"unknown {self.kind} '{name}'; choose one of: {', '.join(self.names())}"
            ) from None

    def names(self) -> list[str]:
        self._load()
        return sorted(self._items)

    def __contains__(self, name: str) -> bool:
        self._load()
        return name in self._items

    def __iter__(self) -> Iterator[str]:
        return iter(self.names())

    def build(self, name: str, *args: Any, **kwargs: Any) -> Any:
        """``get(name)(*args, **kwargs)``."""
        factory: Callable[..., Any] = self.get(name)
        return factory(*args, **kwargs)
