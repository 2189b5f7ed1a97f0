"""The real BIG-bench archive for the tests that run on it (real CIFAR-10, real multiple-choice tasks).

``make test`` fetches it once per machine (``python -m uqcompress.data.bigbench``, from the package index pip is
configured to use) and passes its path as ``$UQCOMPRESS_BIGBENCH_ARCHIVE``; without that variable the machine's own
cache is looked at (``$UQCOMPRESS_CACHE`` as the session started, else ``~/.cache/uqcompress``). A missing archive
skips these tests on a developer's machine and fails them under CI (``CI=true``), where a skip would hide it.
"""
from __future__ import annotations

import os
from pathlib import Path

import pytest

from uqcompress.data import bigbench

# read at import (collection), before the session fixture points $UQCOMPRESS_CACHE at a temp folder
MACHINE_CACHE = Path(os.environ.get("UQCOMPRESS_CACHE") or Path.home() / ".cache" / "uqcompress")


def real_archive() -> Path:
    """Path of the real archive, or skip (fail under CI) naming how to get it."""
    env = os.environ.get(bigbench.ENV_VAR)
    path = Path(env) if env else MACHINE_CACHE / "bigbench" / bigbench.ARCHIVE_NAME
    if not path.is_file():
        why = (f"the BIG-bench archive is not at {path}: fetch it once with `make data` "
               f"(python -m uqcompress.data.bigbench)")
        if os.environ.get("CI", "").lower() in ("1", "true"):
            pytest.fail(why)
        pytest.skip(why)
    return path


@pytest.fixture(scope="session")
def real_bigbench() -> Path:
    """Point this session at the real archive (its tasks are extracted into the session's cache)."""
    path = real_archive()
    old = os.environ.get(bigbench.ENV_VAR)
    os.environ[bigbench.ENV_VAR] = str(path)
    yield path
    if old is None:
        os.environ.pop(bigbench.ENV_VAR, None)
    else:
        os.environ[bigbench.ENV_VAR] = old
