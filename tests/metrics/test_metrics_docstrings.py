"""The runnable examples in the metrics docstrings are correct."""
import doctest
import importlib

import pytest

MODULES = ["__init__", "classification", "agreement", "selective", "ood", "correlation", "bootstrap"]


@pytest.mark.parametrize("name", MODULES)
def test_docstring_examples(name):
    mod = importlib.import_module("uqcompress.metrics" + ("" if name == "__init__" else f".{name}"))
    result = doctest.testmod(mod, optionflags=doctest.ELLIPSIS)
    assert result.attempted > 0, f"{name} has no example"
    assert result.failed == 0
