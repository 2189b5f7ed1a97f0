"""On-disk cache: one folder, content-addressed keys, atomic writes, validated reads.

Everything expensive (trained models, compressed models, logits) is stored under ``cache_dir()`` by a key that hashes
*everything that determines it*, so a changed config never reuses a stale entry.

Example:
    >>> from uqcompress.cache import fingerprint
    >>> fingerprint({"lr": 1e-3}, "small_cnn") == fingerprint({"lr": 1e-3}, "small_cnn")
    True
"""
from __future__ import annotations

import hashlib
import json
import os
import tempfile
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch

ENV_VAR = "UQCOMPRESS_CACHE"
_override: Path | None = None


def cache_dir() -> Path:
    """The cache root: ``set_cache_dir`` > ``$UQCOMPRESS_CACHE`` > ``~/.cache/uqcompress``."""
    root = _override or Path(os.environ.get(ENV_VAR) or Path.home() / ".cache" / "uqcompress")
    root.mkdir(parents=True, exist_ok=True)
    return root


def set_cache_dir(path: str | os.PathLike | None) -> None:
    """Use ``path`` as the cache root for this process (``None`` restores the default)."""
    global _override
    _override = Path(path).expanduser() if path else None


def _feed(h: "hashlib._Hash", obj: Any) -> None:
    if isinstance(obj, torch.Tensor):
        t = obj.detach().cpu().contiguous()
        h.update(f"tensor{tuple(t.shape)}{t.dtype}".encode())
        h.update(t.reshape(-1).view(torch.uint8).numpy().tobytes() if t.numel() else b"")  # 0-d: BN counters
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


def _umask_mode() -> int:
    """The mode ``open()`` would give a new file (0o666 minus the umask); mkstemp's own is 0o600."""
    mask = os.umask(0)
    os.umask(mask)
    return 0o666 & ~mask


_FILE_MODE = _umask_mode()  # read once, at import: os.umask is process-wide, not thread-safe to probe later


def _temp_beside(path: Path) -> tuple[int, str]:
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.chmod(tmp, _FILE_MODE)  # results and caches shared on a cluster stay readable like any other file
    return fd, tmp


def atomic_write_bytes(path: str | os.PathLike, data: bytes) -> None:
    """Write ``data`` to ``path`` via a temp file in the same folder + rename: readers never see half a file."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = _temp_beside(path)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def atomic_write_text(path: str | os.PathLike, text: str) -> None:
    atomic_write_bytes(path, text.encode("utf-8"))


def atomic_torch_save(obj: Any, path: str | os.PathLike) -> None:
    """``torch.save`` through a temp file + rename."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = _temp_beside(path)
    os.close(fd)
    try:
        torch.save(obj, tmp)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
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


EVENTS = "events.jsonl"


def log_event(event: str, kind: str, key: str, **meta: Any) -> None:
    """Append one JSON line to ``<cache>/events.jsonl`` (O_APPEND: concurrent jobs never interleave a line).

    Sweeps and tests read it to count real work, e.g. how many inference passes a sweep ran.
    """
    line = json.dumps({"event": event, "kind": kind, "key": key, "pid": os.getpid(), **meta}, default=str) + "\n"
    fd = os.open(cache_dir() / EVENTS, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        os.write(fd, line.encode())
    finally:
        os.close(fd)


def read_events(kind: str | None = None, event: str | None = None) -> list[dict]:
    """The cache's event log, optionally filtered by ``kind`` and ``event``."""
    path = cache_dir() / EVENTS
    if not path.is_file():
        return []
    rows = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    return [r for r in rows if (kind is None or r["kind"] == kind) and (event is None or r["event"] == event)]


def cached(kind: str, key: str, compute: Callable[[], Any], log: Callable[[str], None] | None = None,
           **meta: Any) -> Any:
    """Return the cached tensor payload ``kind/key.pt``, computing and storing it atomically on a miss.

    A corrupt entry (e.g. a crashed writer on another file system) is recomputed, not trusted.
    The payload must be loadable with ``weights_only=True`` (tensors, dicts, lists, numbers, strings).
    """
    path = cache_dir() / kind / f"{key}.pt"
    if path.is_file():
        try:
            out = torch.load(path, map_location="cpu", weights_only=True)
            if log:
                log(f"cache hit  {kind}/{key}")
            return out
        except Exception:
            if log:
                log(f"cache entry {path} unreadable; recomputing")
    if log:
        log(f"cache miss {kind}/{key}")
    out = compute()
    atomic_torch_save(out, path)
    log_event("compute", kind, key, **meta)
    return out
