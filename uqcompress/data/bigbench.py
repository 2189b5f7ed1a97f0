"""Files of BIG-bench tasks, read from the source archive of PyPI ``bigbench==1.0.0`` without installing it.

The package cannot be pip-installed here (it needs tensorflow), but its 358 MB source archive carries every task's
JSON. :func:`bigbench_archive` downloads that archive once into ``<cache>/bigbench/``; :func:`read_task_files`
extracts only ``bigbench/benchmark_tasks/<task>/...`` members (one pass over the archive) and keeps them on disk
under ``<cache>/bigbench/tasks/<task>/``, so later calls never touch the archive. ``$UQCOMPRESS_BIGBENCH_ARCHIVE``
points at an archive you already have.

Example:
    >>> from uqcompress.data.bigbench import read_task_files  # doctest: +SKIP
    >>> files = read_task_files("cifar10_classification", only=["base64/task.json"])  # doctest: +SKIP
    >>> sorted(files)  # doctest: +SKIP
    ['base64/task.json']
"""
from __future__ import annotations

import difflib
import json
import logging
import os
import shutil
import subprocess
import sys
import tarfile
import tempfile
import urllib.request
from pathlib import Path, PurePosixPath
from typing import Iterable

from uqcompress.cache import atomic_write_bytes, atomic_write_text, cache_dir, file_sha256

log = logging.getLogger(__name__)

VERSION = "1.0.0"
ARCHIVE_NAME = f"bigbench-{VERSION}.tar.gz"
#: sha256 of the PyPI source archive bigbench-1.0.0.tar.gz (358,249,635 bytes)
ARCHIVE_SHA256 = "1bb398a5512c6d798cdebe0dfa0ac03f67f6033fa6b39c6ef71df978c7cbc5c2"
#: PyPI's stable address of the same file; used only when pip refuses to download it (see ``_download``)
ARCHIVE_URL = f"https://files.pythonhosted.org/packages/source/b/bigbench/{ARCHIVE_NAME}"
ENV_VAR = "UQCOMPRESS_BIGBENCH_ARCHIVE"
TASKS_PREFIX = "bigbench/benchmark_tasks/"


class BigBenchUnavailable(FileNotFoundError):
    """The archive is not cached and could not be downloaded (offline, blocked, or corrupt)."""


def bigbench_dir() -> Path:
    """``<cache>/bigbench``: the archive, the member index and the extracted task files live here."""
    return cache_dir() / "bigbench"


def bigbench_archive() -> Path:
    """Path of the bigbench 1.0.0 source archive, downloading it once (358 MB) when it is not cached.

    ``$UQCOMPRESS_BIGBENCH_ARCHIVE`` wins when set. Raises :class:`BigBenchUnavailable` (one line) when the archive
    cannot be had.
    """
    env = os.environ.get(ENV_VAR)
    if env:
        path = Path(env).expanduser()
        if not path.is_file():
            raise BigBenchUnavailable(f"${ENV_VAR}={env} is not a file")
        return path
    path = bigbench_dir() / ARCHIVE_NAME
    if not path.is_file():
        _download(path)
    return path


def _download(dest: Path) -> None:
    """Fetch the archive into a temp folder next to ``dest`` and move it in atomically.

    ``pip download`` is tried first. Recent pip (26.x) refuses this sdist *after* downloading it: its metadata
    declares a ``bleurt @ file://...`` direct-URL dependency, which PyPI distributions may not declare. Such a pip is
    skipped, and on any pip failure the same file is fetched from PyPI's file host; either way the result must match
    :data:`ARCHIVE_SHA256`.
    """
    dest.parent.mkdir(parents=True, exist_ok=True)
    log.warning("downloading the bigbench %s source archive (358 MB, once) into %s", VERSION, dest.parent)
    with tempfile.TemporaryDirectory(dir=dest.parent, prefix=".download-") as tmp:
        got = Path(tmp) / ARCHIVE_NAME
        pip_error = "skipped: this pip rejects direct-URL dependencies in PyPI sdists"
        if _pip_can_download():
            cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "--no-binary", ":all:",
                   f"bigbench=={VERSION}", "-d", tmp, "--quiet"]
            proc = subprocess.run(cmd, capture_output=True, text=True)
            pip_error = _last_line(proc.stderr) or f"pip exited with {proc.returncode}"
        if not got.is_file():
            log.info("pip download failed (%s); fetching %s", pip_error, ARCHIVE_URL)
            try:
                with urllib.request.urlopen(ARCHIVE_URL, timeout=60) as r, open(got, "wb") as f:
                    shutil.copyfileobj(r, f, 1 << 20)
            except OSError as e:
                raise BigBenchUnavailable(
                    f"cannot download the bigbench {VERSION} source archive (pip: {pip_error}; {ARCHIVE_URL}: "
                    f"{type(e).__name__}: {e}); put {ARCHIVE_NAME} into {dest.parent} or set ${ENV_VAR}"
                ) from None
        digest = file_sha256(got)
        if digest != ARCHIVE_SHA256:
            raise BigBenchUnavailable(f"downloaded {ARCHIVE_NAME} has sha256 {digest}, expected {ARCHIVE_SHA256}")
        os.replace(got, dest)


def _pip_can_download() -> bool:
    """False for a pip that rejects bigbench's metadata (it has ``pip._internal.metadata.direct_references``), so
    the 358 MB are not downloaded twice."""
    import importlib.util

    try:
        return importlib.util.find_spec("pip._internal.metadata.direct_references") is None
    except ModuleNotFoundError:  # no pip at all
        return False


def _last_line(text: str) -> str:
    lines = [ln.strip() for ln in (text or "").splitlines() if ln.strip()]
    return lines[-1] if lines else ""


def _task_path(member: str) -> PurePosixPath | None:
    """``bigbench-1.0.0/bigbench/benchmark_tasks/<task>/<rel>`` -> ``<task>/<rel>``; None for other members."""
    parts = PurePosixPath(member).parts
    if len(parts) < 4 or "/".join(parts[1:3]) + "/" != TASKS_PREFIX:
        return None
    rel = PurePosixPath(*parts[3:])
    if rel.is_absolute() or ".." in rel.parts:
        return None
    return rel


def _index_path() -> Path:
    return bigbench_dir() / "tasks" / "index.json"


def _read_index() -> dict[str, list[str]] | None:
    try:
        return json.loads(_index_path().read_text())
    except (OSError, ValueError):
        return None


def _scan(archive: Path, tasks: set[str], wanted: dict[str, set[str] | None]) -> dict[str, list[str]]:
    """One pass over the archive: extract the wanted task files, and return the index {task: [files]}."""
    index: dict[str, list[str]] = {}
    root = bigbench_dir() / "tasks"
    try:
        with tarfile.open(archive, "r:*") as tar:
            for m in tar:
                rel = _task_path(m.name)
                if rel is None or not m.isfile():
                    continue
                task, inner = rel.parts[0], "/".join(rel.parts[1:])
                if not inner:
                    continue
                index.setdefault(task, []).append(inner)
                if task in tasks and (wanted[task] is None or inner in wanted[task]):
                    data = tar.extractfile(m).read()
                    atomic_write_bytes(root / task / inner, data)
    except (tarfile.TarError, OSError, EOFError) as e:
        first = (str(e).strip().splitlines() or [""])[0].rstrip(":")
        raise BigBenchUnavailable(f"bigbench archive {archive} is unreadable ({type(e).__name__}: {first}); "
                                  f"delete it to download it again") from None
    return {t: sorted(f) for t, f in sorted(index.items())}


def task_names() -> list[str]:
    """Names of all tasks in the archive (from the on-disk index; the first call scans the archive)."""
    index = _read_index()
    if index is None:
        index = _scan(bigbench_archive(), set(), {})
        atomic_write_text(_index_path(), json.dumps(index))
    return sorted(index)


def read_task_files(task_name: str, only: Iterable[str] | None = None) -> dict[str, bytes]:
    """The files of one BIG-bench task as ``{path inside the task folder: bytes}`` (e.g. ``"task.json"``).

    Args:
        task_name: folder name under ``bigbench/benchmark_tasks/`` (``"cifar10_classification"``).
        only: paths inside the task folder to return (default: all of them), e.g. ``["base64/task.json"]`` to
            skip a large sibling subtask.

    Files are extracted once and cached under ``<cache>/bigbench/tasks/<task_name>/``. An unknown task or file is a
    one-line ``ValueError`` with close matches.
    """
    index = _read_index()
    root = bigbench_dir() / "tasks" / task_name
    if index is not None:
        _check_known(index, task_name, only)
        files = list(only) if only is not None else index[task_name]
        if all((root / f).is_file() for f in files):
            return {f: (root / f).read_bytes() for f in files}
    index = _scan(bigbench_archive(), {task_name}, {task_name: None if only is None else set(only)})
    atomic_write_text(_index_path(), json.dumps(index))
    _check_known(index, task_name, only)
    files = list(only) if only is not None else index[task_name]
    return {f: (root / f).read_bytes() for f in files}


def _check_known(index: dict[str, list[str]], task_name: str, only: Iterable[str] | None) -> None:
    if task_name not in index:
        close = difflib.get_close_matches(task_name, list(index), n=5)
        hint = f"; close matches: {', '.join(close)}" if close else f"; {len(index)} tasks, see task_names()"
        raise ValueError(f"no BIG-bench task '{task_name}' in bigbench {VERSION}{hint}")
    missing = [f for f in (only or []) if f not in index[task_name]]
    if missing:
        raise ValueError(f"BIG-bench task '{task_name}' has no file '{missing[0]}'; it has: "
                         f"{', '.join(index[task_name])}")


__all__ = ["ARCHIVE_SHA256", "BigBenchUnavailable", "bigbench_archive", "bigbench_dir", "read_task_files",
           "task_names"]
