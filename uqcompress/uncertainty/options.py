"""Validation of a registry implementation's options against its constructor (one-line errors).

Example:
    >>> from uqcompress.uncertainty.options import check_options
    >>> check_options("selector", "threshold", lambda value=0.5: None, {"target": 0.9})
    Traceback (most recent call last):
    ...
    ValueError: selector 'threshold' has no option 'target'; its options: value
"""
from __future__ import annotations

from typing import Any, Callable


def check_options(kind: str, name: str, factory: Callable[..., Any], opts: dict) -> None:
    """A one-line error for an option the implementation does not take, listing the ones it does."""
    import inspect

    params = inspect.signature(factory).parameters
    if any(p.kind == p.VAR_KEYWORD for p in params.values()):
        return
    known = [k for k in params if k != "self"]
    bad = sorted(set(opts) - set(known))
    if bad:
        raise ValueError(f"{kind} '{name}' has no option {', '.join(map(repr, bad))}; its options: "
                         f"{', '.join(known) or '(none)'}")
