"""Start-up cost of a job: the time from its start to its first inference, logged once per job.

A sweep job pays a fixed cost before it does any work: the interpreter and imports (a fresh process per job with
``submitit``, reused worker processes with ``joblib`` and ``ray``, one process for the basic launcher), composing the
config, loading the data, building or loading both models. :func:`job_started` marks the start of a job (called by
:func:`uqcompress.app.run_job`); the :class:`~uqcompress.runner.Runner` calls :func:`first_inference` whenever it
serves model outputs, computed or read from the cache, and runs a pass; the first call after the start logs one line
and one ``startup`` event in the cache's ``events.jsonl``:

``{"event": "startup", "kind": "job", "key": <run fingerprint>, "job_s", "process_s", "cpu_s", "jobs_before", "what"}``

``job_s``: seconds from the job's start to its first inference (the per-job cost a launcher cannot hide);
``process_s``: seconds since the process started (interpreter, imports, Hydra; ``None`` where ``/proc`` is missing);
``cpu_s``: CPU seconds the process has used so far (on a loaded machine, close to what ``process_s`` would be idle);
``jobs_before``: jobs this process ran before (0 for a fresh process; reused workers import nothing again).
``scripts/bench_sweep.py`` reads these events.

Example:
    >>> from uqcompress import startup
    >>> startup.job_started("k")
    >>> startup.pending()
    True
    >>> startup.first_inference("demo", log_event=lambda *a, **k: None)["job_s"] >= 0
    True
    >>> startup.pending()
    False
"""
from __future__ import annotations

import logging
import os
import time
from typing import Any, Callable

log = logging.getLogger("uqcompress")

_state: dict[str, Any] = {"start": None, "key": None, "before": 0, "started": 0}


def process_age() -> float | None:
    """Seconds since this process started (Linux: ``/proc/self/stat`` against the boot clock), else None."""
    try:
        with open("/proc/self/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
        started = int(fields[19]) / os.sysconf("SC_CLK_TCK")  # field 22 of stat(5): start time after boot, ticks
        age = time.clock_gettime(time.CLOCK_BOOTTIME) - started
    except (OSError, ValueError, IndexError, AttributeError):
        return None
    return age if 0 <= age < 86400 * 365 else None


def job_started(key: str, start: float | None = None) -> None:
    """Mark the start of a job (``key``: its run fingerprint, recorded with the event; ``start``: a
    ``time.perf_counter()`` reading when the job started, default now)."""
    _state.update(start=time.perf_counter() if start is None else start, key=key, before=_state["started"], started=_state["started"] + 1)


def pending() -> bool:
    """True between :func:`job_started` and the job's first inference."""
    return _state["start"] is not None


def first_inference(what: str, log_event: Callable[..., None] | None = None) -> dict[str, Any] | None:
    """Record the job's first inference (``what``: e.g. ``"small_cnn logits calibration"``); a no-op after the first
    call of a job, or outside a job. Returns the recorded numbers the first time."""
    start = _state["start"]
    if start is None:
        return None
    job_s = time.perf_counter() - start
    facts = {"job_s": round(job_s, 4), "process_s": _round(process_age()), "cpu_s": round(time.process_time(), 4),
             "jobs_before": _state["before"], "what": what}
    _state["start"] = None
    log.info("start-up: first inference %.2f s after the job started (%s since the process started; %s)", job_s,
             "?" if facts["process_s"] is None else f"{facts['process_s']:.2f} s", what)
    if log_event is None:
        from uqcompress.cache import log_event
    log_event("startup", "job", _state["key"] or "", **facts)
    return facts


def _round(x: float | None) -> float | None:
    return None if x is None else round(x, 4)
