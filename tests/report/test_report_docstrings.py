"""The runnable examples in the docstrings of the report, provenance, progress, help and chatter modules are correct."""
import doctest
import importlib

import pytest

MODULES = ["uqcompress.report.provenance", "uqcompress.report.intervals", "uqcompress.report.examples",
           "uqcompress.report.formatting", "uqcompress.report.summary", "uqcompress.report.plots",
           "uqcompress.report.html", "uqcompress.report.results", "uqcompress.progress", "uqcompress._quiet",
           "uqcompress.help"]


@pytest.mark.parametrize("name", MODULES)
def test_docstring_examples(name):
    mod = importlib.import_module(name)
    result = doctest.testmod(mod, optionflags=doctest.ELLIPSIS)
    assert result.attempted > 0, f"{name} has no example"
    assert result.failed == 0
