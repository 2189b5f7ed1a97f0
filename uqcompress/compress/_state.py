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

from uqcompress.cache import atomic_torch_save, cache_dir, log_event, safe_torch_load

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
    return cache_dir() / "compressed" / scheme / f"{key}.pt"


def calibrated_module(scheme: str, key: str, build: Callable[[], nn.Module], calibrate: Callable[[nn.Module], Any],
                      finish: Callable[[nn.Module], nn.Module] = lambda m: m) -> tuple[nn.Module, bool]:
    """``finish(calibrate(build()))``, or on a cache hit ``finish(build())`` with the cached state loaded.

    Returns ``(module, cache_hit)``. An unreadable or mismatching entry is recomputed, never trusted. A state
    computed and stored is logged in ``events.jsonl`` (kind ``calibrated``); inside :func:`transient` it is not stored.
    """
    path = cached_state_path(scheme, key)
    if path.is_file():
        try:
            state = safe_torch_load(path, what=f"cached {scheme} model")
            module = finish(build())
            module.load_state_dict(state, strict=True)
            log.info("quant=%s: loaded calibrated model from cache %s", scheme, path)
            return module.eval(), True
        except (ValueError, RuntimeError, KeyError) as e:
            log.warning("quant=%s: ignoring unusable cache entry %s (%s)", scheme, path, str(e).splitlines()[0])
    module = build()
    calibrate(module)
    module = finish(module).eval()
    if not _TRANSIENT.get():
        atomic_torch_save(module.state_dict(), path)
        log_event("compute", "calibrated", key, scheme=scheme)
    return module, False
