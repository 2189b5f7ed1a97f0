"""Files of BIG-bench tasks, read from the source archive of PyPI ``bigbench==1.0.0`` without installing it.

The package cannot be pip-installed here (it needs tensorflow, and pip >= 26 refuses its metadata), but its 358 MB
source archive carries every task's JSON. :func:`bigbench_archive` downloads that archive once per machine into
``<cache>/bigbench/`` from the package index pip is configured to use (:mod:`uqcompress.data._pip_index`: the URL
and sha256 come from the index's simple API; the bytes must also match :data:`ARCHIVE_SHA256`), under a file lock so
that concurrent processes download it once. :func:`read_task_files` extracts only
``bigbench/benchmark_tasks/<task>/...`` members (one pass over the archive for any number of tasks, see
:func:`prefetch`) and keeps them under ``<cache>/bigbench/tasks/<task>/``, so later calls never touch the archive.
``$UQCOMPRESS_BIGBENCH_ARCHIVE`` points at an archive you already have.

``python -m uqcompress.data.bigbench [TASK ...]`` fetches the archive (and extracts the tasks named) ahead of time.

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
import sys
import tarfile
import time
from pathlib import Path, PurePosixPath
from typing import Iterable

from uqcompress.cache import atomic_write_bytes, atomic_write_text, cache_dir

log = logging.getLogger(__name__)

PROJECT = "bigbench"
VERSION = "1.0.0"
ARCHIVE_NAME = f"bigbench-{VERSION}.tar.gz"
#: sha256 of the PyPI source archive bigbench-1.0.0.tar.gz (358,249,635 bytes)
ARCHIVE_SHA256 = "1bb398a5512c6d798cdebe0dfa0ac03f67f6033fa6b39c6ef71df978c7cbc5c2"
ARCHIVE_MB = 358
ENV_VAR = "UQCOMPRESS_BIGBENCH_ARCHIVE"
TASKS_PREFIX = "bigbench/benchmark_tasks/"


class BigBenchUnavailable(FileNotFoundError):
    """The archive is not cached and could not be downloaded (offline, blocked, or corrupt)."""


def bigbench_dir() -> Path:
    """``<cache>/bigbench``: the archive, the member index and the extracted task files live here."""
    return cache_dir() / "bigbench"


def bigbench_archive(progress: bool = True, download: bool = True) -> Path:
    """Path of the bigbench 1.0.0 source archive, downloading it once (358 MB) when it is not cached.

    ``$UQCOMPRESS_BIGBENCH_ARCHIVE`` wins when set; ``download=False`` only looks. Concurrent callers on one cache wait for each other (a
    ``filelock`` next to the archive) instead of downloading twice. Raises :class:`BigBenchUnavailable` (one line)
    when the archive cannot be had.
    """
    env = os.environ.get(ENV_VAR)
    if env:
        path = Path(env).expanduser()
        if not path.is_file():
            raise BigBenchUnavailable(f"${ENV_VAR}={env} is not a file")
        return path
    path = bigbench_dir() / ARCHIVE_NAME
    if path.is_file():
        return path
    if not download:
        raise BigBenchUnavailable(f"the bigbench {VERSION} archive is not at {path}; put {ARCHIVE_NAME} there or "
                                  f"set ${ENV_VAR}")
    from filelock import FileLock

    path.parent.mkdir(parents=True, exist_ok=True)
    with FileLock(str(path) + ".lock"):
        if not path.is_file():  # another process may have fetched it while we waited
            _download(path, progress)
    return path


def _download(dest: Path, progress: bool) -> None:
    """Resolve the archive on pip's configured indexes and download it verified (see module docstring)."""
    from uqcompress.data import _pip_index as idx

    cfg = idx.pip_config()
    found, misses = idx.find_file(PROJECT, ARCHIVE_NAME, cfg=cfg)
    where = f"put {ARCHIVE_NAME} into {dest.parent} or set ${ENV_VAR}"
    if found is None:
        raise BigBenchUnavailable(f"cannot find the bigbench {VERSION} source archive on pip's package indexes "
                                  f"({'; '.join(misses) or 'none configured'}); {where}")
    if found.sha256 is not None and found.sha256 != ARCHIVE_SHA256:
        raise BigBenchUnavailable(f"{found.index} lists {ARCHIVE_NAME} with sha256 {found.sha256}, expected "
                                  f"{ARCHIVE_SHA256}; {where}")
    log.warning("downloading the bigbench %s source archive (%d MB, once per machine) from %s into %s",
                VERSION, ARCHIVE_MB, found.index, dest.parent)
    t0 = time.perf_counter()
    try:
        idx.download(found, dest, ARCHIVE_SHA256, progress=progress, cert=idx.pip_cert(cfg))
    except ValueError as e:  # pooch: hash mismatch (the temp file is already gone)
        raise BigBenchUnavailable(f"downloaded {ARCHIVE_NAME} from {found.url} failed its checksum "
                                  f"({str(e).splitlines()[0]}); {where}") from None
    except Exception as e:  # OSError, requests' ConnectionError / HTTPError / Timeout: one line, the cause named
        first = (str(e).strip().splitlines() or [""])[0]
        raise BigBenchUnavailable(f"cannot download {found.url} ({type(e).__name__}: {first}); {where}") from None
    log.warning("bigbench archive ready (%.0f s): %s", time.perf_counter() - t0, dest)


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


def _on_disk(index: dict[str, list[str]], wanted: dict[str, set[str] | None]) -> bool:
    """True when every wanted file of every task the index knows is extracted (unknown names are the caller's
    one-line error, not a reason to scan again)."""
    root = bigbench_dir() / "tasks"
    for task, files in wanted.items():
        if task in index and not all((root / task / f).is_file() for f in (files or index[task])):
            return False
    return True


def _ensure(wanted: dict[str, set[str] | None]) -> dict[str, list[str]]:
    """Extract the wanted files ({task: files or None for all}) unless they are on disk; returns the index.

    One pass over the archive for all of them, under a lock so that concurrent processes do not scan twice.
    """
    index = _read_index()
    if index is not None and _on_disk(index, wanted):
        return index
    from filelock import FileLock

    bigbench_dir().mkdir(parents=True, exist_ok=True)
    with FileLock(str(bigbench_dir() / "tasks.lock")):
        index = _read_index()
        if index is None or not _on_disk(index, wanted):
            index = _scan(bigbench_archive(), set(wanted), wanted)
            atomic_write_text(_index_path(), json.dumps(index))
    return index


def task_names() -> list[str]:
    """Names of all tasks in the archive (from the on-disk index; the first call scans the archive)."""
    return sorted(_ensure({}))


def prefetch(tasks: Iterable[str]) -> None:
    """Extract every file of the given tasks (``task`` or ``task/subtask``) in one pass over the archive, so a
    data set of several tasks reads the 358 MB archive once, not once per task."""
    _ensure({str(t).strip("/").split("/")[0]: None for t in tasks})


def read_task_files(task_name: str, only: Iterable[str] | None = None) -> dict[str, bytes]:
    """The files of one BIG-bench task as ``{path inside the task folder: bytes}`` (e.g. ``"task.json"``).

    Args:
        task_name: folder name under ``bigbench/benchmark_tasks/`` (``"cifar10_classification"``).
        only: paths inside the task folder to return (default: all of them), e.g. ``["base64/task.json"]`` to
            skip a large sibling subtask.

    Files are extracted once and cached under ``<cache>/bigbench/tasks/<task_name>/``. An unknown task or file is a
    one-line ``ValueError`` with close matches.
    """
    only = None if only is None else list(only)
    index = _ensure({task_name: None if only is None else set(only)})
    _check_known(index, task_name, only)
    root = bigbench_dir() / "tasks" / task_name
    files = only if only is not None else index[task_name]
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


def main(argv: list[str] | None = None) -> int:
    """``python -m uqcompress.data.bigbench [TASK ...]``: fetch the archive once (and extract TASKs); prints its path."""
    import argparse

    p = argparse.ArgumentParser(prog="python -m uqcompress.data.bigbench", description=main.__doc__)
    p.add_argument("tasks", nargs="*", help="task folders to extract now, e.g. cifar10_classification")
    args = p.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    try:
        path = bigbench_archive()
        if args.tasks:
            prefetch(args.tasks)
            index = _read_index() or {}
            for t in args.tasks:
                _check_known(index, t.strip("/").split("/")[0], None)
    except (BigBenchUnavailable, ValueError) as e:
        print(f"uqcompress: error: {e}", file=sys.stderr)
        return 2
    print(path)
    return 0


__all__ = ["ARCHIVE_SHA256", "BigBenchUnavailable", "bigbench_archive", "bigbench_dir", "prefetch",
           "read_task_files", "task_names"]

if __name__ == "__main__":
    sys.exit(main())
