"""The real BIG-bench archive for the tests that run on it (real CIFAR-10, real multiple-choice tasks), when a user has
it: ``$UQCOMPRESS_BIGBENCH_ARCHIVE``, else the machine's own cache (``$UQCOMPRESS_CACHE`` as the session started, else
``~/.cache/uqcompress``). The package index no longer serves the archive, so it is an optional source: a missing
archive skips these tests with the reason, under CI too (no package registry ships it).
"""
from __future__ import annotations

import os
from pathlib import Path

import pytest

from uqcompress.data import bigbench

# read at import (collection), before the session fixture points $UQCOMPRESS_CACHE at a temp folder
MACHINE_CACHE = Path(os.environ.get("UQCOMPRESS_CACHE") or Path.home() / ".cache" / "uqcompress")


def real_archive() -> Path:
    """Path of the real archive, or skip naming how to get it."""
    env = os.environ.get(bigbench.ENV_VAR)
    path = Path(env) if env else MACHINE_CACHE / "bigbench" / bigbench.ARCHIVE_NAME
    if not path.is_file():
        pytest.skip(f"optional source: the BIG-bench archive is not at {path} (no package index serves it any more; "
                    f"set ${bigbench.ENV_VAR} to a copy you have)")
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
