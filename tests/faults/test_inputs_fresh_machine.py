"""Issue 16 case 10 on a fresh machine: the BIG-bench archive comes from the package index pip is configured to use.

Real pieces only: pip's own ``pip config list`` reads a pip.conf / ``PIP_*`` variables; a local index answers the
simple API over HTTP (PEP 691 JSON or PEP 503 HTML) or as a ``file://`` folder; the archive is a small bigbench-shaped
tarball; two processes race for it. What is not the real thing: the archive's pinned sha256 is set to the tarball's.
"""
from __future__ import annotations

import hashlib
import http.server
import json
import os
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from uqcompress.data import bigbench

from tests.conftest import ROOT
from tests.data.synthetic_bigbench import make_archive

NAME = bigbench.ARCHIVE_NAME


class Index(http.server.ThreadingHTTPServer):
    """A simple-API index on 127.0.0.1 serving one project page and one file; counts the file's downloads."""

    def __init__(self, payload: bytes, listed_sha: str | None, mode: str = "json", chunk_delay: float = 0.0):
        super().__init__(("127.0.0.1", 0), _Handler)
        self.payload, self.listed_sha, self.mode, self.chunk_delay = payload, listed_sha, mode, chunk_delay
        self.file_gets = 0
        self.page_accepts: list[str] = []
        self.url = f"http://127.0.0.1:{self.server_address[1]}"
        threading.Thread(target=self.serve_forever, daemon=True).start()


class _Handler(http.server.BaseHTTPRequestHandler):
    server: Index

    def log_message(self, *args) -> None:  # keep test output clean
        pass

    def do_GET(self) -> None:  # noqa: N802
        s = self.server
        if self.path == "/simple/bigbench/":
            s.page_accepts.append(self.headers.get("Accept", ""))
            frag = f"#sha256={s.listed_sha}" if s.listed_sha else ""
            if s.mode == "json":
                body = json.dumps({"meta": {"api-version": "1.1"}, "name": "bigbench", "files": [
                    {"filename": "bigbench-0.0.1.tar.gz", "url": "/files/bigbench-0.0.1.tar.gz", "hashes": {}},
                    {"filename": NAME, "url": f"/files/{NAME}",
                     "hashes": {"sha256": s.listed_sha} if s.listed_sha else {}}]}).encode()
                ctype = "application/vnd.pypi.simple.v1+json"
            else:
                body = f'<html><body><a href="../../files/{NAME}{frag}">{NAME}</a></body></html>'.encode()
                ctype = "text/html"
            self._send(200, body, ctype)
        elif self.path == f"/files/{NAME}":
            s.file_gets += 1
            self.send_response(200)
            self.send_header("Content-Length", str(len(s.payload)))
            self.end_headers()
            step = max(1, len(s.payload) // 20)
            for i in range(0, len(s.payload), step):  # slow enough for two processes to overlap
                self.wfile.write(s.payload[i:i + step])
                time.sleep(s.chunk_delay)
        else:
            self._send(404, b"not found", "text/plain")

    def _send(self, code: int, body: bytes, ctype: str) -> None:
        self.send_response(code)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


@pytest.fixture(scope="module")
def source(tmp_path_factory) -> tuple[bytes, str]:
    path = tmp_path_factory.mktemp("src") / NAME
    make_archive(path, per_class=1)
    data = path.read_bytes()
    return data, hashlib.sha256(data).hexdigest()


@pytest.fixture
def fresh(tmp_cache, tmp_path, monkeypatch, source):
    """A machine with no archive in its cache and pip configured only by the test (PIP_CONFIG_FILE, no PIP_* index
    variables), expecting the synthetic archive's sha256."""
    for var in ("PIP_INDEX_URL", "PIP_EXTRA_INDEX_URL", "PIP_NO_INDEX", bigbench.ENV_VAR):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setattr(bigbench, "ARCHIVE_SHA256", source[1])
    return tmp_cache


def pip_conf(tmp_path: Path, index: str, extra: list[str]) -> Path:
    path = tmp_path / "pip.conf"
    path.write_text("[global]\nindex-url = " + index + "\nextra-index-url =\n" + "".join(f"    {e}\n" for e in extra))
    return path


def file_index(tmp_path: Path, name: str, with_bigbench: bytes | None = None, sha: str | None = None) -> str:
    """A PEP 503 ``file://`` index folder (like the ones this machine's pip.conf lists) with or without bigbench."""
    root = tmp_path / name
    (root / "simple" / "numpy").mkdir(parents=True)
    (root / "simple" / "numpy" / "index.html").write_text('<a href="../../files/numpy-2.0.tar.gz">numpy-2.0.tar.gz</a>')
    if with_bigbench is not None:
        (root / "files").mkdir()
        (root / "files" / NAME).write_bytes(with_bigbench)
        (root / "simple" / "bigbench").mkdir()
        (root / "simple" / "bigbench" / "index.html").write_text(
            f'<a href="../../files/{NAME}#sha256={sha}">{NAME}</a>')
    return (root / "simple").as_uri() + "/"


def test_archive_comes_from_the_index_in_pips_config_once(fresh, tmp_path, monkeypatch, source):
    payload, sha = source
    with Index(payload, sha, mode="json") as index:
        empty = file_index(tmp_path, "local")  # a file:// extra index without bigbench, as on this machine
        monkeypatch.setenv("PIP_CONFIG_FILE", str(pip_conf(tmp_path, f"{index.url}/simple", [empty])))
        got = bigbench.bigbench_archive()
        assert got == fresh / "bigbench" / NAME and got.read_bytes() == payload
        from uqcompress.cache import _FILE_MODE

        assert got.stat().st_mode & 0o777 == _FILE_MODE  # readable like any other cache file, not pooch's 0o600
        assert index.file_gets == 1 and "application/vnd.pypi.simple.v1+json" in index.page_accepts[0]
        assert bigbench.bigbench_archive() == got and index.file_gets == 1  # once per machine
        # and the whole chain works: the CIFAR-10 task is read out of the downloaded archive
        assert json.loads(bigbench.read_task_files("cifar10_classification", only=["base64/task.json"])
                          ["base64/task.json"])["name"] == "base64"


def test_pep503_html_and_file_indexes_are_searched_in_pips_order(fresh, tmp_path, monkeypatch, source):
    payload, sha = source
    with Index(payload, sha, mode="html") as index:
        lacking = file_index(tmp_path, "a")
        monkeypatch.setenv("PIP_INDEX_URL", f"{index.url}/nothing/")  # 404 for every project
        monkeypatch.setenv("PIP_EXTRA_INDEX_URL", f"{lacking} {index.url}/simple/")
        got = bigbench.bigbench_archive()
        assert got.read_bytes() == payload and index.file_gets == 1


def test_a_file_index_that_has_the_archive_is_copied_and_verified(fresh, tmp_path, monkeypatch, source):
    payload, sha = source
    monkeypatch.setenv("PIP_INDEX_URL", file_index(tmp_path, "b", with_bigbench=payload, sha=sha))
    monkeypatch.setenv("PIP_EXTRA_INDEX_URL", "")
    assert bigbench.bigbench_archive().read_bytes() == payload


def test_an_index_listing_another_hash_is_refused_before_downloading(fresh, tmp_path, monkeypatch, source):
    with Index(source[0], "0" * 64) as index:
        monkeypatch.setenv("PIP_INDEX_URL", f"{index.url}/simple/")
        with pytest.raises(bigbench.BigBenchUnavailable) as e:
            bigbench.bigbench_archive()
        msg = str(e.value)
        assert "\n" not in msg and f"{index.url}/simple/ lists {NAME} with sha256 {'0' * 64}" in msg
        assert source[1] in msg and bigbench.ENV_VAR in msg and index.file_gets == 0


def test_bytes_that_fail_the_pinned_hash_leave_nothing_behind(fresh, tmp_path, monkeypatch, source):
    with Index(source[0][:-100] + b"x" * 100, None) as index:  # the index gives no hash; the bytes are wrong
        monkeypatch.setenv("PIP_INDEX_URL", f"{index.url}/simple/")
        with pytest.raises(bigbench.BigBenchUnavailable, match=f"downloaded {NAME} from .* failed its checksum"):
            bigbench.bigbench_archive()
        assert index.file_gets == 1
    left = sorted(p.name for p in (fresh / "bigbench").iterdir())
    assert left == [NAME + ".lock"]  # no archive, no temp file


def test_no_index_has_it_is_one_line_naming_each_index_and_the_way_out(fresh, tmp_path, monkeypatch):
    lacking = file_index(tmp_path, "c")
    monkeypatch.setenv("PIP_INDEX_URL", "http://127.0.0.1:9/simple/")  # nothing listens on the discard port
    monkeypatch.setenv("PIP_EXTRA_INDEX_URL", lacking)
    with pytest.raises(bigbench.BigBenchUnavailable) as e:
        bigbench.bigbench_archive()
    msg = str(e.value)
    assert "\n" not in msg and msg.startswith("cannot find the bigbench 1.0.0 source archive on pip's package indexes")
    assert "http://127.0.0.1:9/simple/: URLError" in msg and f"{lacking}: no project 'bigbench'" in msg
    assert f"put {NAME} into {fresh / 'bigbench'} or set ${bigbench.ENV_VAR}" in msg


def test_two_processes_on_one_cache_download_once(fresh, tmp_path, source):
    payload, sha = source
    code = ("import sys; from uqcompress.data import bigbench as b; b.ARCHIVE_SHA256 = sys.argv[1]; "
            "print(b.bigbench_archive(progress=False))")
    with Index(payload, sha, chunk_delay=0.05) as index:  # 20 chunks: a download takes ~1 s
        env = {**os.environ, "PYTHONPATH": str(ROOT), "PIP_INDEX_URL": f"{index.url}/simple/",
               "PIP_EXTRA_INDEX_URL": ""}
        procs = [subprocess.Popen([sys.executable, "-c", code, sha], env=env, stdout=subprocess.PIPE,
                                  stderr=subprocess.PIPE, text=True) for _ in range(2)]
        outs = [p.communicate(timeout=120) for p in procs]
        assert [p.returncode for p in procs] == [0, 0], outs
        assert index.file_gets == 1  # the second process waited on the lock and found the archive there
    assert {o[0].strip() for o in outs} == {str(fresh / "bigbench" / NAME)}
    assert (fresh / "bigbench" / NAME).read_bytes() == payload
