"""Fixtures of the fault tests (helpers live in fault_helpers.py)."""
from __future__ import annotations

from pathlib import Path

import pytest

from fault_helpers import FAST, cli


@pytest.fixture(scope="session")
def finished_sweep(tmp_path_factory) -> tuple[Path, Path, list[str]]:
    """(cache, sweep folder, the command's arguments) of a finished 2-job sweep (quant=none,int8) of the embedded
    default; tests work on copies of it (:func:`fault_helpers.copy_sweep`)."""
    base = tmp_path_factory.mktemp("sweep")
    cache, sweep = base / "cache", base / "sweep"
    args = ["--multirun", "quant=none,int8", *FAST, f"hydra.sweep.dir={sweep}"]
    r = cli(*args, cache=cache)
    assert r.returncode == 0, r.stderr[-2000:]
    return cache, sweep, args
