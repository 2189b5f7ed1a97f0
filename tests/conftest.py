"""Shared fixtures: every test session gets its own cache folder, never the user's ~/.cache/uqcompress."""
from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest
import torch
from torch import nn

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


class Block(nn.Module):
    """An MBConv-like net: conv-BN-ReLU, depthwise conv-BN-ReLU6 with a residual add, 1x1 conv, linear head."""

    def __init__(self) -> None:
        super().__init__()
        self.stem = nn.Conv2d(3, 8, 3, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(8)
        self.dw = nn.Conv2d(8, 8, 3, padding=1, groups=8, bias=False)
        self.bn2 = nn.BatchNorm2d(8)
        self.pw = nn.Conv2d(8, 16, 1)
        self.head = nn.Linear(16, 5)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = torch.relu(self.bn1(self.stem(x)))
        h = h + nn.functional.relu6(self.bn2(self.dw(h)))
        return self.head(self.pw(h).mean((2, 3)))


@pytest.fixture
def block():
    """The Block net with non-trivial BatchNorm statistics, as a ModelBundle (static int8 tests, tune swaps)."""
    from uqcompress.models.base import ModelBundle

    torch.manual_seed(0)
    net = Block().eval()
    with torch.no_grad():
        for bn in (net.bn1, net.bn2):
            bn.running_mean.uniform_(-1, 1)
            bn.running_var.uniform_(0.5, 2)
            bn.weight.uniform_(0.2, 3)
    return ModelBundle(net, "block", "block-test", "image", 5, head="head")
