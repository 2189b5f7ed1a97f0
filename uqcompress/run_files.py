"""What a run's results depend on besides its config: the files it read, and the file it exported.

Resume (:mod:`uqcompress.app`) is bound to the config's fingerprint; a config names files by path, and a path says
nothing of what the file holds now. So ``results.json`` also records ``run.inputs``: ``[path, size, mtime_ns,
sha256]`` of every file a config value names (a directory: every file under it), and ``run.export``: ``[path,
sha256]`` of the ``deploy.export`` file. A resumed run is recomputed when an input file is gone, new, or has other
bytes (size and mtime unchanged: taken as the same file, no read; otherwise its sha256 decides, so a ``touch`` alone
does not recompute), or when the exported file is missing or was replaced.

A config value counts as a path when it is a string (or a list of strings) that names an existing file or directory,
outside ``*.name`` (registry names), ``deploy`` (outputs) and the settings that change no number
(:data:`uqcompress.app.NON_RESULT_KEYS`).

Example:
    >>> import tempfile, pathlib
    >>> f = pathlib.Path(tempfile.mkdtemp()) / "x.npz"; _ = f.write_bytes(b"1")
    >>> conf = {"data": {"name": "npz", "path": str(f)}, "seed": 0}
    >>> rec = snapshot(conf)
    >>> changed_inputs(rec, conf) is None
    True
    >>> _ = f.write_bytes(b"22"); changed_inputs(rec, conf).endswith("x.npz changed (size, mtime and sha256)")
    True
"""
from __future__ import annotations

import logging
from pathlib import Path
from typing import Any, Iterator

from uqcompress.cache import file_sha256

log = logging.getLogger("uqcompress")

#: config keys whose paths are not inputs: outputs (``deploy.export``), and the non-result settings (``cache_dir``)
NOT_INPUTS = ("deploy", "hydra")


def _strings(node: Any, key: str = "") -> Iterator[str]:
    if isinstance(node, dict):
        for k, v in node.items():
            if k == "name" or (not key and (k in NOT_INPUTS or _non_result(k))):
                continue
            yield from _strings(v, f"{key}.{k}" if key else str(k))
    elif isinstance(node, (list, tuple)):
        for v in node:
            yield from _strings(v, key)
    elif isinstance(node, str) and node.strip():
        yield node


def _non_result(key: str) -> bool:
    from uqcompress.app import NON_RESULT_KEYS

    return key in NON_RESULT_KEYS


def input_files(conf: dict) -> list[Path]:
    """Every file the config names (absolute, sorted): its path values, and the files under its directory values."""
    out: set[Path] = set()
    for s in _strings(conf):
        p = Path(s).expanduser()
        try:
            if p.is_file():
                out.add(p.absolute())
            elif p.is_dir():
                out.update(f.absolute() for f in p.rglob("*") if f.is_file())
        except OSError:  # a value that is no path the OS takes (too long, a NUL byte)
            continue
    return sorted(out)


def snapshot(conf: dict) -> list[list]:
    """``[[path, size, mtime_ns, sha256], ...]`` of :func:`input_files` (``run.inputs`` in results.json)."""
    rows = []
    for p in input_files(conf):
        st = p.stat()
        rows.append([str(p), st.st_size, st.st_mtime_ns, file_sha256(p)])
    return rows


def changed_inputs(recorded: Any, conf: dict) -> str | None:
    """Why the input files differ from those ``recorded`` with the results (a phrase naming the first one), or None
    when they are the same."""
    old = {str(r[0]): r for r in recorded} if isinstance(recorded, list) else {}
    now = input_files(conf)
    for p in now:
        r = old.pop(str(p), None)
        if r is None:
            return f"input file {p} was not read by that run"
        st = p.stat()
        if (st.st_size, st.st_mtime_ns) == (r[1], r[2]):
            continue
        if file_sha256(p) != r[3]:
            return f"input file {p} changed (size, mtime and sha256)"
    if old:
        return f"input file {next(iter(old))} is gone"
    return None


def export_record(conf: dict) -> list | None:
    """``[path, sha256]`` of the ``deploy.export`` file written by the run (``run.export``), None without one."""
    path = ((conf.get("deploy") or {}).get("export"))
    if not path or not Path(path).is_file():
        return None
    return [str(Path(path).absolute()), file_sha256(path)]


def export_problem(recorded: Any, conf: dict) -> str | None:
    """Why the run's ``deploy.export`` file is not the one it wrote (missing, replaced), or None."""
    path = (conf.get("deploy") or {}).get("export")
    if not path:
        return None
    if not Path(path).is_file():
        return f"its deploy.export file {path} is missing"
    if not isinstance(recorded, list) or len(recorded) != 2 or file_sha256(path) != recorded[1]:
        return f"its deploy.export file {path} is not the one it wrote"
    return None


__all__ = ["changed_inputs", "export_problem", "export_record", "input_files", "snapshot"]


class Refused(ValueError):
    """A single run must not touch its folder: it holds another config's record."""


def may_resume(out_dir: Path, record: dict, fp: str, conf: dict, multirun: bool, *, held: str,
               fingerprint_key: str, kept: str) -> bool:
    """Whether ``record`` (the folder's ``results.json`` or ``tune.json``, called ``held`` in messages) is this
    config's (fingerprint), read from the same input files (``run.inputs``), with its ``deploy.export`` file in place
    (``run.export``): True resumes from it; False recomputes (one log line says why, ``kept`` where the old files
    go). Another config's record raises :class:`Refused` in a single run (its folder is left alone) and is recomputed
    in a sweep.

    Shared by the main run (:mod:`uqcompress.app`) and the tune (:mod:`uqcompress.tune.app`).

    >>> may_resume(Path("."), {"fp": "a", "run.inputs": []}, "a", {"seed": 0}, False, held="results",
    ...            fingerprint_key="fp", kept="old results kept as results.previous.json")
    True
    """
    have = record.get(fingerprint_key)
    if have == fp:
        why = changed_inputs(record.get("run.inputs"), conf) or export_problem(record.get("run.export"), conf)
        if why is None:
            log.info("resume: %s already has %s; skipping (resume=false to recompute)", out_dir, held)
            return True
        log.warning("resume: %s has %s of this config, but %s; recomputing (%s)", out_dir, held, why, kept)
        return False
    what = (f"{held} of another config (fingerprint {have}, this run {fp})" if isinstance(have, str)
            else f"{held} without a config fingerprint (an older uqcompress)")
    if not multirun:
        raise Refused(f"{out_dir} already holds {what}; choose another hydra.run.dir, or resume=false to "
                      f"recompute there (the {kept})")
    log.warning("resume: %s holds %s; recomputing (%s)", out_dir, what, kept)
    return False
