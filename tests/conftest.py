"""Shared fixtures: every test session gets its own cache folder, never the user's ~/.cache/uqcompress."""
from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="session", autouse=True)
def session_cache(tmp_path_factory) -> Path:
    """A fresh cache for the whole session (models trained once, reused across tests)."""
    from uqcompress.cache import ENV_VAR, set_cache_dir

    path = tmp_path_factory.mktemp("uqcache")
    old = os.environ.get(ENV_VAR)
    os.environ[ENV_VAR] = str(path)
    set_cache_dir(None)
    yield path
    if old is None:
        os.environ.pop(ENV_VAR, None)
    else:
        os.environ[ENV_VAR] = old


@pytest.fixture
def tmp_cache(tmp_path, monkeypatch) -> Path:
    """An empty cache just for this test (an override a test sets with ``set_cache_dir`` is dropped after it)."""
    from uqcompress.cache import ENV_VAR, set_cache_dir

    path = tmp_path / "cache"
    monkeypatch.setenv(ENV_VAR, str(path))
    set_cache_dir(None)
    yield path
    set_cache_dir(None)


@pytest.fixture
def cli():
    """``cli(*overrides)`` runs ``python -m uqcompress`` in a subprocess (see :func:`run_cli`)."""
    return run_cli


def run_cli(*args: str, cwd: Path | None = None, timeout: int = 600, module: str = "uqcompress"):
    """Run ``python -m MODULE ARGS`` (default ``uqcompress``; ``uqcompress.tune``) in a subprocess with this
    interpreter; returns CompletedProcess."""
    import subprocess

    env = {**os.environ, "PYTHONPATH": str(ROOT), "CI": "true"}
    return subprocess.run([sys.executable, "-m", module, *args], cwd=cwd or ROOT, env=env,
                          capture_output=True, text=True, timeout=timeout)
