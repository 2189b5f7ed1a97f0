"""The Hydra job: resolve the config, run the pipeline, write results into the Hydra run directory.

In a ``--multirun`` sweep a job whose ``results.json`` already exists is skipped (``resume=true``), and a job that
raises is recorded in ``failed.json`` (config + traceback) while the sweep goes on.
"""
from __future__ import annotations

import json
import logging
import sys
import traceback
from pathlib import Path

from omegaconf import DictConfig, OmegaConf

from uqcompress.registry import UnknownNameError

log = logging.getLogger("uqcompress")

#: errors that are the user's input, not a bug: one line, exit code 2, no traceback
USER_ERRORS = (UnknownNameError, ValueError, FileNotFoundError, ModuleNotFoundError)
FAILED = "failed.json"


def _hydra_state() -> tuple[Path, bool]:
    """(run directory, whether this job is part of a multirun)."""
    try:
        from hydra.core.hydra_config import HydraConfig
        from hydra.types import RunMode

        hc = HydraConfig.get()
        return Path(hc.runtime.output_dir), hc.mode == RunMode.MULTIRUN
    except Exception:  # called outside Hydra
        return Path.cwd(), False


def run_job(cfg: DictConfig) -> float | None:
    """Run one configured job and write ``results.json`` / ``predictions.csv`` / plots; returns compressed accuracy."""
    from uqcompress.cache import atomic_write_text, set_cache_dir
    from uqcompress.report.results import RESULTS, read_results

    from uqcompress._malloc import keep_freed_memory

    keep_freed_memory()  # large per-batch activations reuse memory instead of page-faulting (see _malloc)
    conf = OmegaConf.to_container(cfg, resolve=True)
    set_cache_dir(conf.get("cache_dir"))
    out_dir, multirun = _hydra_state()
    if conf.get("resume", True) and (out_dir / RESULTS).is_file():
        log.info("resume: %s already has results; skipping (resume=false to recompute)", out_dir)
        return read_results(out_dir).get("compressed.accuracy")
    (out_dir / FAILED).unlink(missing_ok=True)
    try:
        return _run(conf, out_dir)
    except USER_ERRORS as e:
        msg = str(e).splitlines()[0] if str(e) else type(e).__name__
        if multirun:
            log.error("job failed: %s", msg)
            atomic_write_text(out_dir / FAILED, json.dumps(
                {"error": msg, "config": conf, "traceback": traceback.format_exc()}, indent=2, default=str))
            return None
        print(f"uqcompress: error: {msg}", file=sys.stderr)
        log.debug("details", exc_info=True)
        sys.exit(2)
    except Exception as e:
        if not multirun:
            raise
        log.exception("job failed (%s); the sweep goes on", type(e).__name__)
        atomic_write_text(out_dir / FAILED, json.dumps(
            {"error": f"{type(e).__name__}: {e}", "config": conf, "traceback": traceback.format_exc()},
            indent=2, default=str))
        return None


def _run(conf: dict, out_dir: Path) -> float | None:
    from uqcompress.pipeline import run_config, run_title
    from uqcompress.report.results import write_results
    from uqcompress.report.table import render

    result = run_config(conf)
    if conf.get("plots", True):
        from uqcompress.report.plots import plot_run

        plot_run(result, out_dir)
    path = write_results(out_dir, result.metrics, result.predictions)
    render(result.metrics, title=run_title(conf))
    log.info("results: %s", path)
    return result.metrics.get("compressed.accuracy")
