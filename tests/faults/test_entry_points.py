"""Issue 27: entry points other than ``python -m uqcompress`` that crashed.

Before (main abf16aa): ``python -m uqcompress.tune --help`` died in 83 lines (``Unsupported interpolation type
uqcompress_help``: the help resolver was registered by ``uqcompress.__main__`` only); ``scripts/validate_guarantees.py``
imported ``compare_latency`` from ``uqcompress.measure``, gone since latency moved into the runner.
"""
from __future__ import annotations

import ast
import importlib
import importlib.util
import subprocess
import sys

import pytest

from fault_helpers import ROOT, env

SCRIPTS = sorted((ROOT / "scripts").glob("*.py"))


def test_tune_help_lists_the_tune_and_budget_options():
    r = subprocess.run([sys.executable, "-m", "uqcompress.tune", "--help"], cwd=ROOT, env=env(), capture_output=True,
                       text=True, timeout=120)
    assert r.returncode == 0, r.stderr[-2000:]
    assert "Traceback" not in r.stderr + r.stdout
    assert "budget.flips=null" in r.stdout and "tune.schemes=[int8]" in r.stdout
    assert "quant.calibration_samples=512" in r.stdout  # the shared config groups, as in python -m uqcompress --help


@pytest.mark.parametrize("script", SCRIPTS, ids=[p.name for p in SCRIPTS])
def test_every_uqcompress_name_a_script_imports_exists(script):
    """Each ``from uqcompress... import name`` in a script (top level or inside a function) names a real thing."""
    missing = []
    for node in ast.walk(ast.parse(script.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module and node.module.split(".")[0] == "uqcompress":
            mod = importlib.import_module(node.module)
            missing += [f"{node.module}.{a.name} (line {node.lineno})" for a in node.names
                        if not hasattr(mod, a.name) and importlib.util.find_spec(f"{node.module}.{a.name}") is None]
    assert not missing, missing
