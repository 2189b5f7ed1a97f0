"""Every example in the tune modules' docstrings runs and prints what it says."""
from __future__ import annotations

import doctest
import importlib

import pytest

MODULES = ["uqcompress.tune.budget", "uqcompress.tune.search", "uqcompress.tune.sensitivity",
           "uqcompress.tune.options", "uqcompress.tune.report", "uqcompress.tune.swap", "uqcompress.tune.__main__",
           "uqcompress.compress._observers", "uqcompress.compress._state"]


@pytest.mark.parametrize("name", MODULES)
def test_docstring_examples(name, tmp_cache):
    mod = importlib.import_module(name)
    result = doctest.testmod(mod, optionflags=doctest.ELLIPSIS)
    assert result.attempted > 0, f"{name} has no example"
    assert result.failed == 0
