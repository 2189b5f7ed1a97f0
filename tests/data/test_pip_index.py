"""uqcompress.data._pip_index: pip's own configuration decides the indexes; simple-API pages (PEP 691 / PEP 503)."""
from __future__ import annotations

import json
import sys

import pytest

from uqcompress.data import _pip_index as idx


def test_pep691_json_page_resolves_relative_urls_and_skips_yanked():
    page = json.dumps({"files": [
        {"filename": "p-1.0.tar.gz", "url": "../../files/p-1.0.tar.gz", "hashes": {"sha256": "aa"}},
        {"filename": "p-0.9.tar.gz", "url": "https://host/p-0.9.tar.gz#frag", "hashes": {}, "yanked": "bad"},
        {"filename": "p-1.1.tar.gz", "url": "https://other/p-1.1.tar.gz", "hashes": {}}]}).encode()
    got = idx.parse_simple_page(page, "application/vnd.pypi.simple.v1+json", "https://idx/simple/p/")
    assert got == {"p-1.0.tar.gz": ("https://idx/files/p-1.0.tar.gz", "aa"),
                   "p-1.1.tar.gz": ("https://other/p-1.1.tar.gz", None)}


def test_pep503_html_page_reads_the_sha256_fragment():
    page = b'<html><a href="/f/p-1.0.tar.gz#sha256=bb">p-1.0.tar.gz</a><a href="p-2.0.tar.gz#md5=cc">p-2.0.tar.gz</a>'
    got = idx.parse_simple_page(page, "text/html", "https://idx/simple/p/")
    assert got == {"p-1.0.tar.gz": ("https://idx/f/p-1.0.tar.gz", "bb"),
                   "p-2.0.tar.gz": ("https://idx/simple/p/p-2.0.tar.gz", None)}


def test_indexes_follow_pips_config_file_then_its_environment(tmp_path, monkeypatch):
    for var in ("PIP_INDEX_URL", "PIP_EXTRA_INDEX_URL"):
        monkeypatch.delenv(var, raising=False)
    conf = tmp_path / "pip.conf"
    conf.write_text("[global]\nindex-url = https://mirror.example/simple\nextra-index-url =\n"
                    "    file:///opt/a/simple\n    https://mirror.example/simple/\n")
    monkeypatch.setenv("PIP_CONFIG_FILE", str(conf))
    assert idx.pip_indexes() == ["https://mirror.example/simple/", "file:///opt/a/simple/"]  # deduplicated
    monkeypatch.setenv("PIP_INDEX_URL", "https://env.example/simple")  # the environment wins, as in pip
    monkeypatch.setenv("PIP_EXTRA_INDEX_URL", "")
    assert idx.pip_indexes() == ["https://env.example/simple/"]


def test_without_pip_the_environment_is_read_and_pypi_is_the_default(monkeypatch):
    monkeypatch.setattr(sys, "executable", "/nonexistent/python")  # `python -m pip` cannot start
    monkeypatch.setenv("PIP_INDEX_URL", "https://env.example/simple/")
    monkeypatch.setenv("PIP_EXTRA_INDEX_URL", "https://x.example/simple https://y.example/simple")
    assert idx.pip_indexes() == ["https://env.example/simple/", "https://x.example/simple/",
                                 "https://y.example/simple/"]
    monkeypatch.delenv("PIP_INDEX_URL")
    monkeypatch.delenv("PIP_EXTRA_INDEX_URL")
    assert idx.pip_indexes() == [idx.PYPI_SIMPLE]


@pytest.mark.parametrize("name, folder", [("bigbench", "bigbench"), ("Big_Bench", "big-bench"), ("a.b--c", "a-b-c")])
def test_project_folder_is_pep503_normalised(name, folder):
    assert idx.normalize(name) == folder
