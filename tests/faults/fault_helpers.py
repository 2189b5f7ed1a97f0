"""Shared by the fault tests: a small real run of the embedded default, its cache's events, and real fault injection
(a full tmpfs or a read-only bind mount in a user+mount namespace, another user), each skipped with a reason where the
platform lacks it."""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
from functools import lru_cache
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
# the embedded default (real MNIST + animal silhouettes, small CNN, static int8), shrunk to seconds; two epochs make
# a model clearly better than chance (~0.7), so a swapped or random-init entry would show in the numbers
FAST = ["limit=300", "fit_limit=300", "ood.limit=200", "model.epochs=2", "model.batch_size=16", "threads=1",
        "plots=false", "progress=false", "latency.repeats=2"]
# results that depend on the data and the models only (latency is timed, the run section names the run)
#: keys that depend on when and how fast a run ran, not on what it computed (``*_from_cache``: was the calibrated
#: state read from the cache, a fact of the run)
TIMED = ("latency", "speedup", "cascade.cost", "run.", "_from_cache")


def env(cache: Path | None = None) -> dict[str, str]:
    e = {**os.environ, "PYTHONPATH": str(ROOT), "CI": "true", "HYDRA_FULL_ERROR": "0"}
    e.pop("UQCOMPRESS_CACHE", None)
    if cache is not None:
        e["UQCOMPRESS_CACHE"] = str(cache)
    return e


def cli(*args: str, cache: Path | None = None, prefix: tuple[str, ...] = (), timeout: int = 600,
        extra_env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    """``python -m uqcompress ARGS`` in a subprocess (optionally under ``prefix``, e.g. ``unshare ...``)."""
    cmd = [*prefix, sys.executable, "-m", "uqcompress", *args]
    return subprocess.run(cmd, cwd=ROOT, env={**env(cache), **(extra_env or {})}, capture_output=True, text=True,
                          timeout=timeout)


def events(cache: Path, kind: str | None = None, event: str = "compute") -> list[dict]:
    path = cache / "events.jsonl"
    rows = [json.loads(line) for line in path.read_text().splitlines()] if path.is_file() else []
    return [r for r in rows if (kind is None or r["kind"] == kind) and r["event"] == event]


def numbers(run_dir: Path) -> dict:
    """The results of a run that do not depend on timing or on what the cache held, nor the settings that change
    no result (``config.cache_dir``, ``config.progress``, ...: uqcompress.app.NON_RESULT_KEYS)."""
    from uqcompress.app import NON_RESULT_KEYS

    res = json.loads((run_dir / "results.json").read_text())
    settings = tuple(f"config.{k}" for k in NON_RESULT_KEYS)
    return {k: v for k, v in res.items() if not any(t in k for t in TIMED) and not k.startswith(settings)}


def warnings_in(text: str) -> list[str]:
    """Warning and traceback lines, but the runner's "latency may be unreliable" (it depends on the machine's load,
    not on the fault under test)."""
    return [line for line in text.splitlines()
            if ("[WARNING]" in line or "Traceback" in line) and "latency may be unreliable" not in line]


@lru_cache(maxsize=None)
def _namespace_works() -> str | None:
    if not shutil.which("unshare"):
        return "no unshare binary"
    probe = tempfile.mkdtemp()
    try:
        r = subprocess.run(["unshare", "--user", "--map-root-user", "--mount", "sh", "-c",
                            f"mount -t tmpfs -o size=64k tmpfs {probe} && mount --bind {probe} {probe} && "
                            f"mount -o remount,ro,bind {probe}"], capture_output=True, text=True)
        return None if r.returncode == 0 else f"user+mount namespaces unavailable ({r.stderr.strip()[:80]})"
    finally:
        shutil.rmtree(probe, ignore_errors=True)


def need_namespace() -> None:
    reason = _namespace_works()
    if reason:
        pytest.skip(f"cannot mount a full or read-only folder here: {reason}")


def full_disk(folder: Path, size: str, then: str = "") -> tuple[str, ...]:
    """A command prefix that runs its command with a ``size`` tmpfs mounted on ``folder`` (a real full disk);
    ``then`` is a shell command run afterwards inside the namespace (the tmpfs goes with it), its output on stderr."""
    folder.mkdir(parents=True, exist_ok=True)
    after = f'"$@"; rc=$?; {then} >&2; exit $rc' if then else 'exec "$@"'
    return ("unshare", "--user", "--map-root-user", "--mount", "sh", "-c",
            f'mount -t tmpfs -o size={size} tmpfs "{folder}" && {after}', "sh")


def read_only(folder: Path) -> tuple[str, ...]:
    """A command prefix that runs its command with ``folder`` bind-mounted read-only (a real read-only disk)."""
    folder.mkdir(parents=True, exist_ok=True)
    return ("unshare", "--user", "--map-root-user", "--mount", "sh", "-c",
            f'mount --bind "{folder}" "{folder}" && mount -o remount,ro,bind "{folder}" && exec "$@"', "sh")


def as_nobody() -> tuple[str, ...]:
    """A command prefix running as the unprivileged user ``nobody`` (root ignores file modes, nobody does not)."""
    if os.geteuid() != 0:
        pytest.skip("running as another user needs root")
    if not shutil.which("setpriv"):
        pytest.skip("no setpriv binary to run as another user")
    return ("setpriv", "--reuid=65534", "--regid=65534", "--clear-groups")


def world_dir() -> Path:
    """A fresh folder every user can traverse (pytest's tmp_path is 0700, closed to another user)."""
    d = Path(tempfile.mkdtemp(prefix="uqfault-"))
    d.chmod(0o755)
    return d


def copy_sweep(finished_sweep, tmp_path: Path) -> tuple[Path, Path, list[str], dict[str, Path]]:
    """A copy of the ``finished_sweep`` fixture under ``tmp_path``: (cache, sweep, arguments, {quant: job folder})."""
    cache, sweep, args = finished_sweep
    shutil.copytree(cache, tmp_path / "cache")
    shutil.copytree(sweep, tmp_path / "sweep")
    args = [a.replace(str(sweep), str(tmp_path / "sweep")) for a in args]
    jobs = {json.loads(p.read_text())["config.quant"]: p.parent for p in (tmp_path / "sweep").rglob("results.json")}
    return tmp_path / "cache", tmp_path / "sweep", args, jobs
