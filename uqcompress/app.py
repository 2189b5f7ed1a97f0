"""The Hydra job: resolve the config, run the pipeline, write results into the Hydra run directory.

Resume is bound to the config. ``results.json`` records ``run.fingerprint``, a hash of the resolved config (without
the keys in :data:`NON_RESULT_KEYS`, which never change a number) and the uqcompress version. With ``resume=true``
(the default) a run directory whose ``results.json`` has the same fingerprint is skipped, unless a file the config
names changed since (``run.inputs``) or its ``deploy.export`` file is missing or replaced (``run.export``): then it is
recomputed, the old results kept as ``results.previous.json`` (:mod:`uqcompress.run_files`). Otherwise:

- in a sweep (``--multirun``), results of another config, of an older uqcompress, or an unreadable (truncated) file
  are set aside as ``results.previous.json`` with one warning, and the job is recomputed;
- in a single run, a folder holding another config's results is refused with one line naming it (exit 2): pick
  another ``hydra.run.dir``, or ``resume=false`` to recompute there (the old file is kept as ``results.previous.json``);
  an unreadable one is set aside and recomputed.

A job that raises in a sweep writes ``failed.json`` (config + traceback) and the sweep goes on; at the end
:class:`SweepStatus` lists the failed jobs in one line and the command exits 1. Disk and permission faults (no space,
read-only, permission denied) are one line naming the path (exit 2); an output folder that cannot be written is
refused before any work.
"""
from __future__ import annotations

import errno
import json
import logging
import math
import os
import sys
import time
import traceback
from pathlib import Path
from typing import Any

from hydra.experimental.callback import Callback
from omegaconf import DictConfig, OmegaConf

from uqcompress import startup
from uqcompress.objective import objective_settings, objective_value, sweeper_direction
from uqcompress.registry import UnknownNameError

log = logging.getLogger("uqcompress")

#: errors that are the user's input, not a bug: one line, exit code 2, no traceback
USER_ERRORS = (UnknownNameError, ValueError, FileNotFoundError, ModuleNotFoundError)
#: OSErrors of the disk or of permissions: one line naming the path and the cause, exit code 2
DISK_ERRNOS = frozenset({errno.ENOSPC, errno.EROFS, errno.EACCES, errno.EPERM, errno.EDQUOT})
#: top-level config keys that never change a reported number: left out of the run fingerprint (and of sweep folder
#: names, see ``hydra.job.config.override_dirname.exclude_keys`` in conf/config.yaml)
NON_RESULT_KEYS = ("progress", "plots", "resume", "threads", "sweep_name", "cache_dir", "objective")
FAILED = "failed.json"
PREVIOUS = "results.previous.json"


def run_fingerprint(conf: dict) -> str:
    """Hash of a resolved run config and the uqcompress version, without :data:`NON_RESULT_KEYS`.

    >>> run_fingerprint({"seed": 0, "progress": True}) == run_fingerprint({"seed": 0, "progress": False})
    True
    >>> run_fingerprint({"seed": 0}) == run_fingerprint({"seed": 1})
    False
    """
    from uqcompress import __version__
    from uqcompress.cache import fingerprint

    return fingerprint("uqcompress-run", __version__, {k: v for k, v in conf.items() if k not in NON_RESULT_KEYS})


def _hydra_state() -> tuple[Path, bool]:
    """(run directory, whether this job is part of a multirun)."""
    try:
        from hydra.core.hydra_config import HydraConfig
        from hydra.types import RunMode

        hc = HydraConfig.get()
        return Path(hc.runtime.output_dir), hc.mode == RunMode.MULTIRUN
    except Exception:  # called outside Hydra
        return Path.cwd(), False


def _resume(out_dir: Path, fp: str, multirun: bool, conf: dict) -> dict[str, Any] | None:
    """The results to resume from, or None to compute (:func:`uqcompress.run_files.may_resume` decides)."""
    from uqcompress.report.results import FINGERPRINT, RESULTS, UnreadableResults, read_results
    from uqcompress.run_files import may_resume

    if not (out_dir / RESULTS).exists():
        return None
    try:
        done = read_results(out_dir)
    except UnreadableResults as e:
        log.warning("resume: %s; recomputing", e)
        return None
    ok = may_resume(out_dir, done, fp, conf, multirun, held="results", fingerprint_key=FINGERPRINT,
                    kept=f"old results kept as {PREVIOUS}")
    return done if ok else None


def _set_aside(out_dir: Path) -> None:
    """Move an existing results.json out of the way: a recompute that fails must not leave old results as current."""
    from uqcompress.report.results import RESULTS

    if (out_dir / RESULTS).is_file():
        os.replace(out_dir / RESULTS, out_dir / PREVIOUS)


def run_job(cfg: DictConfig) -> float | None:
    """Run one configured job and write ``results.json`` / ``predictions.csv`` / plots; returns its objective
    (``objective.metric`` of the results, see :mod:`uqcompress.objective`), None when it failed or is undefined."""
    from uqcompress._malloc import keep_freed_memory
    from uqcompress.cache import describe_os_error, set_cache_dir
    from uqcompress.run_files import Refused

    start = time.perf_counter()
    keep_freed_memory()  # large per-batch activations reuse memory instead of page-faulting (see _malloc)
    _log_file_faults_once()
    conf = OmegaConf.to_container(cfg, resolve=True)
    set_cache_dir(conf.get("cache_dir"))
    out_dir, multirun = _hydra_state()
    fp = run_fingerprint(conf)
    startup.job_started(fp, start)
    try:
        metric, _ = objective_settings(conf)
        if conf.get("resume", True):
            done = _resume(out_dir, fp, multirun, conf)
            if done is not None:
                (out_dir / FAILED).unlink(missing_ok=True)
                return objective_value(done, metric)
        _set_aside(out_dir)
        (out_dir / FAILED).unlink(missing_ok=True)
        return objective_value(_run(conf, out_dir, fp), metric)
    except Refused as e:
        return _fail(str(e), conf, out_dir, multirun)
    except USER_ERRORS as e:
        return _fail(str(e).splitlines()[0] if str(e) else type(e).__name__, conf, out_dir, multirun)
    except OSError as e:
        if e.errno not in DISK_ERRNOS:
            if not multirun:
                raise
            return _crash(e, conf, out_dir)
        return _fail(describe_os_error(e), conf, out_dir, multirun)
    except Exception as e:
        if not multirun:
            raise
        return _crash(e, conf, out_dir)


def _write_failed(out_dir: Path, error: str, conf: dict) -> None:
    from uqcompress.cache import atomic_write_text, describe_os_error

    try:
        atomic_write_text(out_dir / FAILED, json.dumps(
            {"error": error, "config": conf, "traceback": traceback.format_exc()}, indent=2, default=str))
    except OSError as e:  # the sweep still lists the job as failed (it has no results.json)
        log.error("cannot record the failure (%s)", describe_os_error(e))


def _fail(msg: str, conf: dict, out_dir: Path, multirun: bool) -> None:
    """A user or disk error: in a sweep, recorded in failed.json; alone, one line on stderr and exit code 2."""
    if multirun:
        log.error("job failed: %s", msg)
        _write_failed(out_dir, msg, conf)
        return None
    print(f"uqcompress: error: {msg}", file=sys.stderr)
    log.debug("details", exc_info=True)
    sys.exit(2)


def _crash(e: BaseException, conf: dict, out_dir: Path) -> None:
    log.exception("job failed (%s); the sweep goes on", type(e).__name__)
    _write_failed(out_dir, f"{type(e).__name__}: {e}", conf)
    return None


def _run(conf: dict, out_dir: Path, fp: str) -> dict[str, Any]:
    import time

    from uqcompress import __version__
    from uqcompress.pipeline import run_config, run_title
    from uqcompress.report.results import write_results
    from uqcompress.report.table import render

    from uqcompress.run_files import export_record, snapshot

    started = time.time()
    inputs = snapshot(conf)  # before reading them: a file changed during the run shows at the next resume
    result = run_config(conf)
    if conf.get("plots", True):
        from uqcompress.report.plots import plot_run

        plot_run(result, out_dir)
    # provenance: overrides, timing, versions, git commit, machine (uqcompress/report/provenance.py)
    from uqcompress.report.provenance import hydra_overrides, run_facts

    result.metrics.update(run_facts(started, time.time(), hydra_overrides()))
    path = write_results(out_dir, result.metrics, result.predictions,
                         run={"fingerprint": fp, "uqcompress_version": __version__, "inputs": inputs,
                              "export": export_record(conf)})
    from uqcompress.report.html import write_run_report

    write_run_report(out_dir, result)  # thumbnails.json (image inputs) + the run's report.html
    render(result.metrics, title=run_title(conf))
    log.info("results: %s", path)
    return result.metrics


# ------------------------------------------------------------------------------------------- the Hydra callback
#: an output folder with less free space cannot even take Hydra's config copies and the log: refused up front
MIN_FREE_BYTES = 64 * 1024


def unwritable_reason(folder: str | os.PathLike) -> str | None:
    """Why ``folder`` (existing or to be created) cannot be written, else None; creates nothing.

    >>> import tempfile
    >>> unwritable_reason(Path(tempfile.mkdtemp()) / "new" / "run") is None
    True
    """
    p = Path(folder).expanduser().absolute()
    while not p.exists() and p != p.parent:
        p = p.parent
    if not p.is_dir():
        return f"{p}: not a directory"
    try:
        st = os.statvfs(p)
    except OSError:
        st = None
    if not os.access(p, os.W_OK | os.X_OK):
        read_only = st is not None and bool(st.f_flag & os.ST_RDONLY)
        return f"{p}: {'read-only file system' if read_only else 'permission denied'}"
    if st is not None and st.f_bavail * st.f_frsize < MIN_FREE_BYTES:
        return f"{p}: no space left on device ({st.f_bavail * st.f_frsize // 1024} KiB free)"
    return None


def _log_file_faults_once() -> None:
    """A log file on a full or vanished disk: one warning line, not a traceback per log record."""
    from uqcompress.cache import describe_os_error

    for handler in logging.getLogger().handlers:
        if isinstance(handler, logging.FileHandler) and not getattr(handler, "_uq_quiet", False):
            def once(record: logging.LogRecord, handler: logging.FileHandler = handler) -> None:
                if not handler._uq_warned:
                    handler._uq_warned = True
                    e = sys.exc_info()[1]
                    cause = describe_os_error(OSError(e.errno, e.strerror, handler.baseFilename)) \
                        if isinstance(e, OSError) else f"{handler.baseFilename}: {type(e).__name__}: {e}"
                    print(f"uqcompress: warning: cannot write the log file ({cause}); logging to the console only",
                          file=sys.stderr)

            handler.handleError, handler._uq_quiet, handler._uq_warned = once, True, False


#: filled by :class:`SweepStatus` at the end of a sweep, read by ``uqcompress.__main__.main`` for the exit status
SWEEP: dict[str, Any] = {}


def failed_jobs(sweep_dir: Path, since: float, done: str | None = None) -> tuple[list[Path], int]:
    """(job folders under ``sweep_dir`` started at or after ``since`` that failed, number of such jobs).

    Every job of a sweep, resumed ones included, rewrites its ``.hydra/overrides.yaml`` when it starts. A job failed
    when it has no ``done`` file (results.json; tune.json for ``python -m uqcompress.tune``), or a failed.json
    (written after its results: e.g. ``objective.metric`` is not in them).
    """
    from uqcompress.report.results import RESULTS

    done = done or RESULTS
    floor = math.floor(since)  # file systems with 1 s timestamps
    jobs = sorted(p.parent.parent for p in Path(sweep_dir).glob("**/.hydra/overrides.yaml")
                  if p.stat().st_mtime >= floor)
    return [j for j in jobs if not (j / done).is_file() or (j / FAILED).is_file()], len(jobs)


class SweepStatus(Callback):
    """Refuses an output folder that cannot be written before any work, points an Optuna sweeper in
    ``objective.direction``; after a sweep, records its failed jobs.

    Configured in conf/config.yaml (``hydra.callbacks.sweep_status``); runs in the launching process, so it sees the
    jobs of any launcher (basic, joblib, submitit) through their folders.
    """

    def __init__(self) -> None:
        self.start = time.time()

    @staticmethod
    def _refuse_unwritable(folder: str) -> None:
        reason = unwritable_reason(folder)
        if reason:
            print(f"uqcompress: error: cannot write the output folder {folder} ({reason})", file=sys.stderr)
            sys.exit(2)

    def on_run_start(self, config: DictConfig, **kwargs: Any) -> None:
        self._refuse_unwritable(str(config.hydra.run.dir))

    def on_multirun_start(self, config: DictConfig, **kwargs: Any) -> None:
        self.start = time.time()
        SWEEP.clear()
        self._refuse_unwritable(str(config.hydra.sweep.dir))
        self._follow_objective(config)

    @staticmethod
    def _follow_objective(config: DictConfig) -> None:
        """An Optuna sweeper optimises in ``objective.direction`` (it runs before the sweeper is made from the
        config); a bad objective is refused before any job starts."""
        try:
            objective = OmegaConf.to_container(config.objective, resolve=True) if "objective" in config else None
            _, direction = objective_settings({"objective": objective})
            want = sweeper_direction(config.hydra.sweeper, list(config.hydra.overrides.hydra), direction)
        except ValueError as e:
            print(f"uqcompress: error: {e}", file=sys.stderr)
            sys.exit(2)
        if want is not None:
            config.hydra.sweeper.direction = want
            log.info("hydra.sweeper.direction=%s (objective.direction)", want)

    def on_multirun_end(self, config: DictConfig, **kwargs: Any) -> None:
        sweep_dir = Path(str(config.hydra.sweep.dir))
        done = "tune.json" if "tune" in config else None  # a tune job's finished file (uqcompress.tune.report)
        failed, total = failed_jobs(sweep_dir, self.start, done)
        SWEEP.update(dir=sweep_dir, failed=failed, total=total)
        log.info("sweep folder: %s (its report: python -m uqcompress.report %s)", sweep_dir, sweep_dir)


def sweep_failure_line() -> str | None:
    """The one line listing a finished sweep's failed jobs, or None when none failed (or no sweep ran)."""
    failed = SWEEP.get("failed")
    if not failed:
        return None
    sweep_dir = SWEEP["dir"]
    names = ", ".join(str(f.relative_to(sweep_dir)) if f.is_relative_to(sweep_dir) else str(f) for f in failed)
    return (f"uqcompress: {len(failed)} of {SWEEP['total']} sweep jobs failed in {sweep_dir}: {names} "
            "(each folder's failed.json says why)")
