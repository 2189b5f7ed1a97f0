"""Find a release file on the package indexes pip is configured to use, and download it verified.

Where to look is pip's own configuration (``pip config list`` of this interpreter: ``PIP_INDEX_URL`` /
``PIP_EXTRA_INDEX_URL``, every ``pip.conf``): the index-url first (PyPI when unset), then each extra-index-url. Each
index is asked through the simple repository API, PEP 691 JSON preferred and PEP 503 HTML accepted, over http(s) or
``file://`` (a local index directory; a project missing there is simply "not on this index"). The file's URL and
sha256 come from the index page; nothing names a file host.

The download itself is :func:`pooch.retrieve` (streams to a temp file in the target folder, checks the sha256, then
moves it in; a custom tqdm bar shows progress on a terminal); a ``file://`` URL is copied and checked the same way.
Locking against a second process is the caller's (see :func:`uqcompress.data.bigbench.bigbench_archive`).

Example:
    >>> from uqcompress.data._pip_index import normalize, parse_simple_page
    >>> normalize("Big_Bench.Tasks")
    'big-bench-tasks'
    >>> page = '<a href="../../files/x-1.0.tar.gz#sha256=ab12">x-1.0.tar.gz</a>'
    >>> parse_simple_page(page.encode(), "text/html", "file:///idx/simple/x/")
    {'x-1.0.tar.gz': ('file:///idx/files/x-1.0.tar.gz', 'ab12')}
"""
from __future__ import annotations

import ast
import json
import logging
import os
import re
import shutil
import ssl
import subprocess
import sys
import tempfile
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass
from html.parser import HTMLParser
from pathlib import Path

from uqcompress.cache import _FILE_MODE, file_sha256

log = logging.getLogger(__name__)

PYPI_SIMPLE = "https://pypi.org/simple/"  # pip's own default index-url, used when none is configured
ACCEPT = "application/vnd.pypi.simple.v1+json, application/vnd.pypi.simple.v1+html;q=0.2, text/html;q=0.01"
TIMEOUT_S = 60


@dataclass(frozen=True)
class IndexFile:
    """One file as an index lists it: where to get it, its sha256 (None when the index gives none), which index."""

    url: str
    sha256: str | None
    index: str


def normalize(project: str) -> str:
    """PEP 503 project name normalisation (the folder name on a simple index)."""
    return re.sub(r"[-_.]+", "-", project).lower()


def pip_config() -> dict[str, str]:
    """``pip config list`` of this interpreter as {``section.key``: value} (``:env:.index-url`` for PIP_INDEX_URL).

    Without a usable pip (``python -m pip`` missing or failing) the ``PIP_*`` environment variables are read
    directly, so a venv made without pip still honours ``PIP_INDEX_URL``.
    """
    env = {**os.environ, "PIP_DISABLE_PIP_VERSION_CHECK": "1"}
    try:
        proc = subprocess.run([sys.executable, "-m", "pip", "config", "list"], capture_output=True, text=True,
                              env=env, timeout=60)
    except (OSError, subprocess.SubprocessError):
        proc = None
    out: dict[str, str] = {}
    if proc is not None and proc.returncode == 0:
        for line in proc.stdout.splitlines():
            key, sep, value = line.partition("=")
            if not sep:
                continue
            try:  # pip prints values with %r
                out[key.strip()] = str(ast.literal_eval(value.strip()))
            except (ValueError, SyntaxError):
                out[key.strip()] = value.strip().strip("'\"")
        return out
    for var in ("PIP_INDEX_URL", "PIP_EXTRA_INDEX_URL", "PIP_CERT"):
        if os.environ.get(var):
            out[":env:." + var[4:].lower().replace("_", "-")] = os.environ[var]
    return out


def _setting(cfg: dict[str, str], key: str) -> str | None:
    """pip's precedence for a download: environment, then the [download] / [install] sections, then [global]."""
    for section in (":env:", "download", "install", "global"):
        if f"{section}.{key}" in cfg:
            return cfg[f"{section}.{key}"]
    return None


def pip_indexes(cfg: dict[str, str] | None = None) -> list[str]:
    """The simple-API index URLs pip would use: index-url (default PyPI), then each extra-index-url, deduplicated."""
    cfg = pip_config() if cfg is None else cfg
    main = (_setting(cfg, "index-url") or PYPI_SIMPLE).split()
    extra = (_setting(cfg, "extra-index-url") or "").split()
    out: list[str] = []
    for url in main[:1] + extra:
        url = url if url.endswith("/") else url + "/"
        if url not in out:
            out.append(url)
    return out


def pip_cert(cfg: dict[str, str]) -> str | None:
    """The CA bundle pip is configured to trust (``cert``), when it names a file."""
    cert = _setting(cfg, "cert")
    return cert if cert and Path(cert).is_file() else None


def _ssl_context(cfg: dict[str, str]) -> ssl.SSLContext | None:
    cert = pip_cert(cfg)
    return ssl.create_default_context(cafile=cert) if cert else None


class _Anchors(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.links: list[tuple[str, str]] = []
        self._href: str | None = None
        self._text: list[str] = []

    def handle_starttag(self, tag: str, attrs: list) -> None:
        if tag == "a":
            self._href = dict(attrs).get("href")
            self._text = []

    def handle_data(self, data: str) -> None:
        if self._href is not None:
            self._text.append(data)

    def handle_endtag(self, tag: str) -> None:
        if tag == "a" and self._href is not None:
            self.links.append((self._href, "".join(self._text).strip()))
            self._href = None


def parse_simple_page(body: bytes, content_type: str, page_url: str) -> dict[str, tuple[str, str | None]]:
    """A project page of a simple index -> {filename: (absolute URL without fragment, sha256 or None)}.

    PEP 691 JSON (``files[].filename/url/hashes``; yanked files are left out) or PEP 503 HTML (anchors whose URL
    fragment may carry ``#sha256=...``).
    """
    out: dict[str, tuple[str, str | None]] = {}
    if "json" in content_type:
        for f in json.loads(body).get("files", []):
            if f.get("yanked"):
                continue
            url = urllib.parse.urljoin(page_url, f["url"])
            out[f["filename"]] = (urllib.parse.urldefrag(url)[0], (f.get("hashes") or {}).get("sha256"))
        return out
    parser = _Anchors()
    parser.feed(body.decode("utf-8", "replace"))
    for href, text in parser.links:
        url, frag = urllib.parse.urldefrag(urllib.parse.urljoin(page_url, href))
        name = text or urllib.parse.unquote(url.rsplit("/", 1)[-1])
        algo, _, digest = frag.partition("=")
        out[name] = (url, digest if algo == "sha256" and digest else None)
    return out


def _read_page(page_url: str, context: ssl.SSLContext | None) -> tuple[bytes, str] | None:
    """(body, content type) of a project page, or None when the index does not have the project."""
    if page_url.startswith("file:"):
        path = Path(urllib.request.url2pathname(urllib.parse.urlparse(page_url).path))
        if path.is_dir():
            path = path / "index.html"  # what pip reads for a file:// index directory
        if not path.is_file():
            return None
        return path.read_bytes(), "application/vnd.pypi.simple.v1+json" if path.suffix == ".json" else "text/html"
    req = urllib.request.Request(page_url, headers={"Accept": ACCEPT})
    try:
        with urllib.request.urlopen(req, timeout=TIMEOUT_S, context=context) as r:
            return r.read(), r.headers.get("Content-Type", "text/html")
    except urllib.error.HTTPError as e:
        if e.code == 404:
            return None
        raise


def find_file(project: str, filename: str, indexes: list[str] | None = None,
              cfg: dict[str, str] | None = None) -> tuple[IndexFile | None, list[str]]:
    """Look ``filename`` of ``project`` up on each index in turn.

    Returns (the first index's listing of it or None, one short line per index that did not have it and why).
    """
    cfg = pip_config() if cfg is None else cfg
    indexes = pip_indexes(cfg) if indexes is None else indexes
    context = _ssl_context(cfg)
    misses: list[str] = []
    for index in indexes:
        page_url = urllib.parse.urljoin(index if index.endswith("/") else index + "/", normalize(project) + "/")
        try:
            page = _read_page(page_url, context)
        except (OSError, ValueError) as e:  # URLError, timeouts, TLS, a broken page
            misses.append(f"{index}: {type(e).__name__}: {getattr(e, 'reason', None) or e}")
            continue
        if page is None:
            misses.append(f"{index}: no project '{project}'")
            continue
        try:
            files = parse_simple_page(*page, page_url)
        except (ValueError, KeyError, TypeError) as e:
            misses.append(f"{index}: unreadable project page ({type(e).__name__}: {e})")
            continue
        if filename not in files:
            misses.append(f"{index}: '{project}' has no {filename}")
            continue
        url, sha = files[filename]
        return IndexFile(url, sha, index), misses
    return None, misses


def download(file: IndexFile, dest: Path, sha256: str, progress: bool = True, cert: str | None = None) -> None:
    """Fetch ``file`` to ``dest`` (atomically: temp file in ``dest``'s folder, checked, then moved in).

    ``cert``: a CA bundle for https (pip's ``cert``; :func:`pip_cert`). Raises ValueError when the bytes do not
    have ``sha256`` (nothing is left at ``dest``), OSError or a ``requests`` error when the transfer fails.
    """
    dest.parent.mkdir(parents=True, exist_ok=True)
    if file.url.startswith("file:"):
        src = Path(urllib.request.url2pathname(urllib.parse.urlparse(file.url).path))
        with tempfile.TemporaryDirectory(dir=dest.parent, prefix=".download-") as tmp:
            got = Path(tmp) / dest.name
            shutil.copyfile(src, got)
            digest = file_sha256(got)
            if digest != sha256:
                raise ValueError(f"{file.url} has sha256 {digest}, expected {sha256}")
            os.replace(got, dest)
        return
    import pooch

    from uqcompress.progress import progress_bar

    kwargs = {"verify": cert} if cert else {}
    with progress_bar(desc=dest.name, enabled=progress, unit="B", unit_scale=True, unit_divisor=1024) as bar:
        downloader = pooch.HTTPDownloader(progressbar=bar if not getattr(bar, "disable", False) else False, timeout=TIMEOUT_S, **kwargs)
        pooch.retrieve(file.url, known_hash=f"sha256:{sha256}", fname=dest.name, path=dest.parent,
                       downloader=downloader)
    os.chmod(dest, _FILE_MODE)  # pooch's temp file is 0o600; a shared cache stays readable like any other file


__all__ = ["IndexFile", "download", "find_file", "normalize", "parse_simple_page", "pip_cert", "pip_config",
           "pip_indexes"]
