"""The on-disk cache of calibrated compressed models (the calibration passes themselves: ``Runner.calibrate``).

A calibrated scheme (static int8, brevitas) splits its work into ``build`` (structure, deterministic, no data),
``calibrate`` (observers see the calibration split, through ``ctx.runner.calibrate``) and ``finish`` (e.g. FX
convert). The finished module's ``state_dict`` is cached under ``compressed/<scheme>/<key>.pt``; a warm run rebuilds
the structure, skips calibration and loads the state, so it never touches the calibration data.

Example:
    >>> import tempfile, torch
    >>> from uqcompress.cache import set_cache_dir
    >>> from uqcompress.compress._state import calibrated_module
    >>> set_cache_dir(tempfile.mkdtemp())
    >>> build = lambda: torch.nn.Linear(2, 2)
    >>> [calibrated_module("demo", "k", build, lambda m: None)[1] for _ in range(2)]  # (module, cache_hit)
    [False, True]
    >>> set_cache_dir(None)
"""
from __future__ import annotations

import contextlib
import contextvars
import logging
from pathlib import Path
from typing import Any, Callable, Iterator

from torch import nn

from uqcompress.cache import cached_entry, entry_path

log = logging.getLogger(__name__)

_TRANSIENT: contextvars.ContextVar[bool] = contextvars.ContextVar("uqcompress_transient_states", default=False)


@contextlib.contextmanager
def transient() -> Iterator[None]:
    """Calibrated modules built inside are not written to the cache: one-off variants (the dozens of ``quant.skip``
    models a layer search measures once and whose results it caches itself) would fill it with near-copies."""
    token = _TRANSIENT.set(True)
    try:
        yield
    finally:
        _TRANSIENT.reset(token)


def cached_state_path(scheme: str, key: str) -> Path:
    """Where :func:`calibrated_module` keeps the calibrated state of ``scheme`` under ``key``."""
    return entry_path(f"compressed/{scheme}", key)


def calibrated_module(scheme: str, key: str, build: Callable[[], nn.Module], calibrate: Callable[[nn.Module], Any],
                      finish: Callable[[nn.Module], nn.Module] = lambda m: m) -> tuple[nn.Module, bool]:
    """``finish(calibrate(build()))``, or on a cache hit ``finish(build())`` with the cached state loaded.

    Returns ``(module, cache_hit)``. The state is a cache entry of kind ``compressed/<scheme>``: bound to its key,
    verified by sha256, loaded only if it fits the rebuilt structure (else recomputed, with one warning), computed once
    under a lock by concurrent jobs, and each calibration is a ``compute`` event of that kind in ``events.jsonl``.
    Inside :func:`transient` a state not already cached is computed and not stored.
    """
    made: dict[str, nn.Module] = {}

    def fits(state: Any) -> str | None:
        module = finish(build())
        try:
            module.load_state_dict(state, strict=True)
        except (RuntimeError, KeyError, ValueError, TypeError) as e:
            return f"does not fit the {scheme} model ({(str(e).strip().splitlines() or [''])[0][:120]})"
        made["module"] = module
        return None

    def compute() -> dict:
        module = build()
        calibrate(module)
        made["module"] = finish(module)
        return made["module"].state_dict()

    if _TRANSIENT.get() and not cached_state_path(scheme, key).is_file():
        compute()
        return made["module"].eval(), False
    _, hit = cached_entry(f"compressed/{scheme}", key, compute, check=fits, finite=False, scheme=scheme)
    if hit:
        log.info("quant=%s: loaded calibrated model from cache %s", scheme, cached_state_path(scheme, key))
    return made["module"].eval(), hit
