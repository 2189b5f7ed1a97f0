"""On-disk cache: content-addressed entries that say what they are, checked on read, computed once under a lock.

Everything expensive (trained weights, calibrated compressed models, logits, features, MC passes, embeddings) is
stored as ``<cache>/<kind>/<key>.pt``, where ``key`` hashes *everything that determines the value*, so a changed
config never reuses a stale entry, and ``kind`` is the folder, which also names the work in the event log:

===================  ==========================================================================
kind                 what
===================  ==========================================================================
``logits``           one inference pass of one model over one split (N, K)
``features``         penultimate features (N, D); ``mc``: T stochastic passes (T, N, K)
``embeddings``       frozen-encoder inputs of a trained head
``models/<name>``    trained weights (``models.base.cached_weights``); ``heads/<name>``: a trained head
``compressed/<s>``   the calibrated state of compression scheme ``s`` (``compress._state.calibrated_module``)
===================  ==========================================================================

Each entry is an envelope ``{"format", "kind", "key", "meta", "tensors", "sha256", "payload"}`` written with
``torch.save`` and read with ``torch.load(weights_only=True)``. A read is trusted only if the format marker, kind and
key match, the sha256 of (kind, key, payload) matches the one recorded at write time, the payload has no NaN/inf and
meets what the caller expects; anything else (an entry of another key swapped in, a truncated or foreign file, a
directory, a file of an older uqcompress) is reported in one warning naming the path and the reason, and recomputed.

Concurrent jobs on one cache (a joblib or SLURM sweep) take a per-entry ``filelock``: check, lock, check again,
compute, atomic write (temp file + rename), unlock. A job that finds the entry locked waits for it instead of
computing it twice. Each real computation appends ``{"event": "compute", "kind", "key", "pid", ...}`` to
``<cache>/events.jsonl`` (rejected entries: ``"invalid"``), so a sweep can be audited for repeated work.

A cache that cannot be written (full disk, read-only or foreign folder) degrades to an uncached run with one warning
naming the folder and the cause; reads of what is there still work.

Example:
    >>> from uqcompress.cache import fingerprint
    >>> fingerprint({"lr": 1e-3}, "small_cnn") == fingerprint({"lr": 1e-3}, "small_cnn")
    True
"""
from __future__ import annotations

import errno
import hashlib
import io
import json
import logging
import os
import shutil
import tempfile
import warnings
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Callable, Iterator

import numpy as np
import torch

ENV_VAR = "UQCOMPRESS_CACHE"
FORMAT = "uqcompress-cache/2"  # the marker of an envelope; entries without it (format 1: bare payloads) are recomputed
EVENTS = "events.jsonl"
_override: Path | None = None
_log = logging.getLogger(__name__)


def cache_dir() -> Path:
    """The cache root: ``set_cache_dir`` > ``$UQCOMPRESS_CACHE`` > ``~/.cache/uqcompress``.

    Created if missing; a root that cannot be created is still returned (writes into it then degrade, see
    :func:`cached`, or fail with one line naming the path).
    """
    root = _override or Path(os.environ.get(ENV_VAR) or Path.home() / ".cache" / "uqcompress")
    try:
        root.mkdir(parents=True, exist_ok=True)
    except OSError:
        pass
    return root


def set_cache_dir(path: str | os.PathLike | None) -> None:
    """Use ``path`` as the cache root for this process (``None`` restores the default)."""
    global _override
    _override = Path(path).expanduser() if path else None


# ---------------------------------------------------------------------------------------------------------- hashing
def _feed(h: "hashlib._Hash", obj: Any) -> None:
    if isinstance(obj, torch.Tensor):
        t = obj.detach().cpu().contiguous()
        h.update(f"tensor{tuple(t.shape)}{t.dtype}".encode())
        if t.is_quantized:  # the int8 values alone do not determine a quantized tensor: its scales do too
            if t.qscheme() in (torch.per_tensor_affine, torch.per_tensor_symmetric):
                h.update(f"q{t.q_scale()!r},{t.q_zero_point()}".encode())
            else:
                h.update(f"q{t.q_per_channel_axis()}".encode())
                _feed(h, t.q_per_channel_scales())
                _feed(h, t.q_per_channel_zero_points())
            t = t.int_repr()
        if t.numel():
            h.update(t.reshape(-1).view(torch.uint8).numpy())  # buffer protocol: no copy of large weights
    elif isinstance(obj, np.ndarray):
        a = np.ascontiguousarray(obj)
        h.update(f"ndarray{a.shape}{a.dtype}".encode())
        h.update(a.tobytes())
    elif isinstance(obj, dict):
        h.update(b"{")
        for k in sorted(obj, key=str):
            _feed(h, str(k))
            _feed(h, obj[k])
        h.update(b"}")
    elif isinstance(obj, (list, tuple)):
        h.update(b"[")
        for v in obj:
            _feed(h, v)
        h.update(b"]")
    elif isinstance(obj, torch.nn.Module):
        _feed(h, obj.state_dict())
    else:
        h.update(json.dumps(obj, sort_keys=True, default=str).encode())


def hash_file(h: "hashlib._Hash", path: str | os.PathLike) -> None:
    """Stream the bytes of ``path`` into the hash ``h`` (4 MiB at a time: weights files are large)."""
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 22), b""):
            h.update(chunk)


def file_sha256(path: str | os.PathLike) -> str:
    """Full hex sha256 of a file's bytes (download and weights checksums)."""
    h = hashlib.sha256()
    hash_file(h, path)
    return h.hexdigest()


def fingerprint(*objs: Any, length: int = 16) -> str:
    """Stable hex digest of configs, strings, arrays, tensors and state_dicts (order of dict keys ignored)."""
    h = hashlib.sha256()
    for o in objs:
        _feed(h, o)
    return h.hexdigest()[:length]


# ------------------------------------------------------------------------------------------------ disk errors, writes
_CAUSES = {errno.ENOSPC: "no space left on device", errno.EROFS: "read-only file system",
           errno.EACCES: "permission denied", errno.EPERM: "operation not permitted",
           errno.EDQUOT: "disk quota exceeded", errno.EISDIR: "is a directory", errno.ENOTDIR: "not a directory"}


def describe_os_error(e: OSError) -> str:
    """``'<path>: <cause>'`` in words (``no space left on device``, ``read-only file system``, ...).

    >>> describe_os_error(OSError(28, "No space left on device", "/data/out/results.json"))
    '/data/out/results.json: no space left on device'
    """
    cause = _CAUSES.get(e.errno) or (e.strerror or str(e)).lower()
    return f"{e.filename}: {cause}" if e.filename else cause


def _at(e: OSError, path: Path, tmp: str | None = None) -> OSError:
    """``e`` naming ``path`` (not the temp file; a write() error names no file at all)."""
    if e.filename and str(e.filename) != tmp:
        return e
    return OSError(e.errno, e.strerror or str(e), str(path))  # OSError(errno, ...) picks the subclass (PermissionError)


def _umask_mode() -> int:
    """The mode ``open()`` would give a new file (0o666 minus the umask); mkstemp's own is 0o600."""
    mask = os.umask(0)
    os.umask(mask)
    return 0o666 & ~mask


_FILE_MODE = _umask_mode()  # read once, at import: os.umask is process-wide, not thread-safe to probe later


def _temp_beside(path: Path) -> tuple[int, str]:
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    except OSError as e:
        raise _at(e, path) from None
    os.chmod(tmp, _FILE_MODE)  # results and caches shared on a cluster stay readable like any other file
    return fd, tmp


@contextmanager
def _atomic(path: Path) -> Iterator[io.BufferedWriter]:
    """An open temp file beside ``path``, fsynced and renamed onto ``path`` on success, removed on any failure.

    An ``OSError`` comes out naming ``path`` (see :func:`describe_os_error`): readers never see half a file.
    """
    fd, tmp = _temp_beside(path)
    try:
        with os.fdopen(fd, "wb") as f:
            yield f
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except OSError as e:
        Path(tmp).unlink(missing_ok=True)
        raise _at(e, path, tmp) from None
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def atomic_write_bytes(path: str | os.PathLike, data: bytes) -> None:
    """Write ``data`` to ``path`` via a temp file in the same folder + rename: readers never see half a file."""
    with _atomic(Path(path)) as f:
        f.write(data)


def atomic_write_text(path: str | os.PathLike, text: str) -> None:
    atomic_write_bytes(path, text.encode("utf-8"))


class _Writes(io.RawIOBase):
    """A file wrapper that remembers the ``OSError`` of a failed write: torch.save turns it into an opaque
    ``RuntimeError`` ("unexpected pos 704 vs 598"), which would hide "no space left on device"."""

    def __init__(self, f: io.BufferedWriter):
        super().__init__()
        self.f, self.error = f, None

    def writable(self) -> bool:
        return True

    def write(self, b) -> int:
        try:
            return self.f.write(b)
        except OSError as e:
            self.error = e
            raise

    def flush(self) -> None:
        try:
            self.f.flush()
        except OSError as e:
            self.error = e
            raise


def atomic_torch_save(obj: Any, path: str | os.PathLike) -> None:
    """``torch.save`` through a temp file + rename; a disk fault raises ``OSError`` naming ``path`` and the cause."""
    with _atomic(Path(path)) as f:
        w = _Writes(f)
        try:
            torch.save(obj, w)
        except Exception:
            if w.error is not None:
                raise w.error from None
            raise


def safe_torch_load(path: str | os.PathLike, what: str = "checkpoint") -> Any:
    """``torch.load(weights_only=True)`` with a one-line error for a missing or corrupt file."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{what} not found: {path}")
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # pickle errors, truncated zip, foreign objects
        first = (str(e).strip().splitlines() or [""])[0][:200]
        raise ValueError(f"{what} {path} is corrupt or not a plain-tensor checkpoint ({type(e).__name__}: {first})") from None


# ------------------------------------------------------------------------------------- cache that cannot be written
_unwritable: dict[str, str] = {}  # cache root -> why; warned once per process and root
_events_unwritable: set[str] = set()
_DISK_ERRNOS = frozenset({errno.EROFS, errno.EACCES, errno.EPERM, errno.ENOSPC, errno.EDQUOT})


def writable() -> bool:
    """False once a write into the current cache root failed in this process (the run goes on uncached)."""
    return str(cache_dir()) not in _unwritable


def _cannot_write(e: OSError) -> None:
    root = str(cache_dir())
    if root not in _unwritable:
        _unwritable[root] = describe_os_error(e)
        _log.warning("cache %s cannot be written (%s); continuing without caching (set cache_dir=... to a writable "
                     "folder to keep results between runs)", root, _unwritable[root])


def log_event(event: str, kind: str, key: str, **meta: Any) -> None:
    """Append one JSON line to ``<cache>/events.jsonl`` (O_APPEND: concurrent jobs never interleave a line).

    Sweeps and tests read it to count real work, e.g. how many inference passes a sweep ran. A log that cannot be
    written is reported once and skipped: it never fails a run.
    """
    root = cache_dir()
    line = json.dumps({"event": event, "kind": kind, "key": key, "pid": os.getpid(), **meta}, default=str) + "\n"
    try:
        fd = os.open(root / EVENTS, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        try:
            os.write(fd, line.encode())
        finally:
            os.close(fd)
    except OSError as e:
        if e.errno in _DISK_ERRNOS:  # read-only, foreign or full: the whole cache is (one warning, run uncached)
            _cannot_write(_at(e, root / EVENTS))
        elif str(root) not in _events_unwritable and writable():
            _events_unwritable.add(str(root))
            _log.warning("cache event log cannot be written (%s)", describe_os_error(_at(e, root / EVENTS)))


def read_events(kind: str | None = None, event: str | None = None) -> list[dict]:
    """The cache's event log, optionally filtered by ``kind`` and ``event`` (a torn line is skipped)."""
    path = cache_dir() / EVENTS
    if not path.is_file():
        return []
    rows = []
    for line in path.read_text().splitlines():
        try:
            rows.append(json.loads(line))
        except ValueError:
            continue
    return [r for r in rows if (kind is None or r.get("kind") == kind) and (event is None or r.get("event") == event)]


# ------------------------------------------------------------------------------------------------------- entries
def entry_path(kind: str, key: str) -> Path:
    """Where the entry ``kind/key`` lives."""
    return cache_dir() / kind / f"{key}.pt"


def _tensors(obj: Any, where: str = "payload") -> Iterator[tuple[str, torch.Tensor]]:
    if isinstance(obj, torch.Tensor):
        yield where, obj
    elif isinstance(obj, dict):
        for k, v in obj.items():
            yield from _tensors(v, f"{where}[{k!r}]")
    elif isinstance(obj, (list, tuple)):
        for i, v in enumerate(obj):
            yield from _tensors(v, f"{where}[{i}]")


def _content_hash(kind: str, key: str, payload: Any) -> str:
    return fingerprint(FORMAT, kind, key, payload, length=64)


def _nonfinite(payload: Any) -> str | None:
    for where, t in _tensors(payload):
        if t.is_floating_point() and not t.is_quantized and t.numel():
            bad = ~torch.isfinite(t.detach())
            if bad.any():
                pos = tuple(int(i) for i in bad.nonzero()[0])
                return f"non-finite value in {where} at {pos[0] if len(pos) == 1 else pos}"
    return None


def _unexpected(payload: Any, expect: dict | None) -> str | None:
    """Why ``payload`` is not what ``expect`` describes (see :func:`cached`), else None."""
    if not expect:
        return None
    unknown = set(expect) - {"type", "shape", "rows", "cols", "dtype"}
    if unknown:
        raise TypeError(f"cached(expect=...): unknown keys {sorted(unknown)}; known: type, shape, rows, cols, dtype")
    if "type" in expect and not isinstance(payload, expect["type"]):
        want = expect["type"]
        names = "/".join(t.__name__ for t in (want if isinstance(want, tuple) else (want,)))
        return f"holds a {type(payload).__name__}, expected a {names}"
    tensor_keys = {"shape", "rows", "cols", "dtype"} & set(expect)
    if not tensor_keys:
        return None
    if not isinstance(payload, torch.Tensor):
        return f"holds a {type(payload).__name__}, expected a tensor"
    shape = tuple(payload.shape)
    if "shape" in expect:
        want = tuple(expect["shape"])
        if len(want) != len(shape) or any(w is not None and w != s for w, s in zip(want, shape)):
            return f"has shape {shape}, expected ({', '.join('*' if w is None else str(w) for w in want)})"
    if "rows" in expect and (not shape or shape[0] != expect["rows"]):
        return f"has shape {shape}, expected {expect['rows']} rows"
    if "cols" in expect and (len(shape) < 2 or shape[-1] != expect["cols"]):
        return f"has shape {shape}, expected {expect['cols']} columns"
    if "dtype" in expect:
        want = expect["dtype"] if isinstance(expect["dtype"], tuple) else (expect["dtype"],)
        if payload.dtype not in want:
            return f"has dtype {payload.dtype}, expected {'/'.join(map(str, want))}"
    return None


def _problem(payload: Any, expect: dict | None, finite: bool) -> str | None:
    return _unexpected(payload, expect) or (_nonfinite(payload) if finite else None)


def _jsonable_meta(meta: dict) -> dict:
    return json.loads(json.dumps(meta, default=str))  # weights_only loading accepts plain types only


def _envelope(kind: str, key: str, payload: Any, meta: dict) -> dict:
    from uqcompress import __version__

    return {"format": FORMAT, "kind": kind, "key": key, "version": __version__, "meta": _jsonable_meta(meta),
            "tensors": {w: [list(t.shape), str(t.dtype)] for w, t in _tensors(payload)},
            "sha256": _content_hash(kind, key, payload), "payload": payload}


def _read(path: Path, kind: str, key: str, expect: dict | None, check: Callable[[Any], str | None] | None,
          finite: bool) -> tuple[Any, str | None]:
    """``(payload, None)`` for a valid entry, ``(None, reason)`` for an unusable one (``path`` exists)."""
    if path.is_dir():
        return None, "is a directory, not a cache file"
    if not path.is_file():
        return None, "is not a regular file"
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # torch's chatter about a foreign file's pickle protocol, storages
            env = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # truncated zip, garbage, a pickle of foreign objects
        return None, f"is unreadable ({type(e).__name__}: {(str(e).strip().splitlines() or [''])[0][:120]})"
    if not isinstance(env, dict) or "format" not in env:
        return None, "has no uqcompress cache header (written by an older uqcompress or another program)"
    if env.get("format") != FORMAT:
        return None, f"has format {env.get('format')!r}, expected {FORMAT!r}"
    if (env.get("kind"), env.get("key")) != (kind, key):
        return None, f"holds entry {env.get('kind')}/{env.get('key')}, not {kind}/{key}"
    payload = env.get("payload")
    if env.get("sha256") != _content_hash(kind, key, payload):
        return None, "content does not match its recorded sha256 (changed after it was written)"
    reason = _problem(payload, expect, finite)
    if reason is None and check is not None:
        reason = check(payload)
    return (payload, None) if reason is None else (None, reason)


def _signature(path: Path) -> tuple | None:
    try:
        st = path.stat()
        return st.st_ino, st.st_mtime_ns, st.st_size
    except OSError:
        return None


_reported: set[tuple[str, tuple | None]] = set()  # (path, signature) of bad entries already warned about


def _report(path: Path, kind: str, key: str, reason: str, sig: tuple | None) -> None:
    if (str(path), sig) in _reported:
        return
    _reported.add((str(path), sig))
    _log.warning("cache entry %s %s; recomputing", path, reason)
    if writable():
        log_event("invalid", kind, key, reason=reason)


_MISS = object()


def _lookup(path, kind, key, expect, check, finite, log) -> Any:
    sig = _signature(path)
    if sig is None and not path.is_dir():
        return _MISS
    payload, reason = _read(path, kind, key, expect, check, finite)
    if reason is not None:
        _report(path, kind, key, reason, sig)
        return _MISS
    if log:
        log(f"cache hit  {kind}/{key}")
    return payload


@contextmanager
def _entry_lock(path: Path, kind: str, key: str) -> Iterator[bool]:
    """Hold ``<entry>.lock`` (yields True), or yield False when the cache cannot be written (run uncached)."""
    from filelock import FileLock, Timeout

    if not writable():
        yield False
        return
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        lock = FileLock(f"{path}.lock")
        try:
            lock.acquire(timeout=0)
        except Timeout:
            _log.info("waiting for another job computing %s/%s", kind, key)
            lock.acquire()
    except OSError as e:
        _cannot_write(_at(e, path.parent))
        yield False
        return
    try:
        yield True
    finally:
        lock.release()


def _store(path: Path, kind: str, key: str, payload: Any, meta: dict) -> None:
    if not writable():
        return
    try:
        if path.is_dir() and not path.is_symlink():
            shutil.rmtree(path)  # our own entry name inside the cache: nothing else belongs there
        atomic_torch_save(_envelope(kind, key, payload, meta), path)
    except OSError as e:
        _cannot_write(e)


def cached_entry(kind: str, key: str, compute: Callable[[], Any], log: Callable[[str], None] | None = None, *,
                 expect: dict | None = None, check: Callable[[Any], str | None] | None = None, finite: bool = True,
                 **meta: Any) -> tuple[Any, bool]:
    """:func:`cached`, returning ``(value, hit)``: ``hit`` is False when ``compute`` ran in this call."""
    path = entry_path(kind, key)
    out = _lookup(path, kind, key, expect, check, finite, log)
    if out is not _MISS:
        return out, True
    seen = _signature(path)
    with _entry_lock(path, kind, key) as locked:
        if locked and _signature(path) != seen:  # another job wrote it while this one waited for the lock
            out = _lookup(path, kind, key, expect, check, finite, log)
            if out is not _MISS:
                return out, True
        if log:
            log(f"cache miss {kind}/{key}")
        out = compute()
        reason = _problem(out, expect, finite)
        if reason is not None:
            where = ", ".join(f"{k}={v}" for k, v in meta.items())
            raise ValueError(f"{kind} {key}{f' ({where})' if where else ''}: the computed value {reason}; "
                             "not cached")
        _store(path, kind, key, out, meta)
        log_event("compute", kind, key, **meta)
    return out, False


def cached(kind: str, key: str, compute: Callable[[], Any], log: Callable[[str], None] | None = None, *,
           expect: dict | None = None, check: Callable[[Any], str | None] | None = None, finite: bool = True,
           **meta: Any) -> Any:
    """The value of cache entry ``kind/key``, checked on read; on a miss ``compute()`` it once (under a lock) and store it.

    Args:
        kind: the cache folder, which also names the work in ``events.jsonl`` (``logits``, ``models/small_cnn``, ...).
        key: hash of everything that determines the value (:func:`fingerprint`).
        compute: makes the value: tensors, or dicts / lists / numbers / strings of them (``weights_only``-loadable).
        log: called with ``"cache hit ..."`` / ``"cache miss ..."`` (e.g. ``logger.debug``).
        expect: what a valid value looks like; a stored value that differs is recomputed, a computed one that
            differs raises ``ValueError``. Keys: ``type`` (a type or tuple of types), ``shape`` (a tuple, ``None`` =
            any size), ``rows`` (size of dim 0), ``cols`` (size of the last dim), ``dtype`` (a dtype or tuple).
        check: ``check(value) -> None | reason`` for stored values (e.g. "does the state fit the model?").
        finite: refuse NaN/inf in floating-point tensors (stored: recompute; computed: ``ValueError``).
        **meta: recorded with the entry and its ``compute`` event (e.g. ``model=``, ``split=``).

    Every problem with a stored entry is logged once as ``cache entry PATH REASON; recomputing``.

    Example:
        >>> import tempfile, torch
        >>> from uqcompress.cache import cached, entry_path, read_events, set_cache_dir
        >>> set_cache_dir(tempfile.mkdtemp())
        >>> cached("logits", "k1", lambda: torch.ones(4, 3), expect={"rows": 4, "cols": 3}, split="test").shape
        torch.Size([4, 3])
        >>> cached("logits", "k1", lambda: torch.zeros(4, 3), expect={"rows": 4, "cols": 3}).sum().item()  # a hit
        12.0
        >>> torch.save(torch.ones(7, 3), entry_path("logits", "k1"))  # a foreign file at the entry's path
        >>> cached("logits", "k1", lambda: torch.zeros(4, 3), expect={"rows": 4, "cols": 3}).sum().item()
        0.0
        >>> [e["event"] for e in read_events("logits")]
        ['compute', 'invalid', 'compute']
        >>> set_cache_dir(None)
    """
    return cached_entry(kind, key, compute, log, expect=expect, check=check, finite=finite, **meta)[0]


def state_mismatch(module: torch.nn.Module, state: Any) -> str | None:
    """Why ``state`` cannot be loaded into ``module`` (keys, shapes, dtypes), else None; loads nothing.

    >>> state_mismatch(torch.nn.Linear(2, 3), torch.nn.Linear(2, 4).state_dict())
    "weight has shape (4, 2), the model's (3, 2)"
    """
    if not isinstance(state, dict):
        return f"holds a {type(state).__name__}, not a state_dict"
    own = module.state_dict()
    missing, extra = sorted(set(own) - set(state)), sorted(set(state) - set(own))
    if missing or extra:
        return f"does not fit the model (missing {missing[:3]}, unexpected {extra[:3]})"
    for name, t in own.items():
        s = state[name]
        if not isinstance(t, torch.Tensor):
            continue
        if not isinstance(s, torch.Tensor):
            return f"{name} is a {type(s).__name__}, not a tensor"
        if tuple(s.shape) != tuple(t.shape):
            return f"{name} has shape {tuple(s.shape)}, the model's {tuple(t.shape)}"
        if s.dtype != t.dtype:
            return f"{name} has dtype {s.dtype}, the model's {t.dtype}"
    return None
