"""The Hydra job of ``python -m uqcompress.tune``: resolve the config, tune, write the run folder.

Errors that are the user's input (:data:`uqcompress.app.USER_ERRORS`) are one line on stderr and exit code 2, raised
before any model work where they can be; when no candidate meets the budget the run folder still gets ``tune.json``
(``chosen: null``, the closest candidate and what it misses), one line says so and the exit code is 3. In a
``--multirun`` sweep a failing job writes ``failed.json`` and the sweep goes on.
"""
from __future__ import annotations

import json
import logging
import sys
import traceback
from pathlib import Path

from omegaconf import DictConfig, OmegaConf

from uqcompress.app import FAILED, USER_ERRORS, _hydra_state

log = logging.getLogger("uqcompress.tune")

NO_CANDIDATE = 3  #: exit code when no candidate meets the budget


def run_tune_job(cfg: DictConfig) -> float | None:
    """Run one tune job into the Hydra run directory; returns the chosen model's test flips (None if none)."""
    from uqcompress._malloc import keep_freed_memory
    from uqcompress.cache import atomic_write_text, set_cache_dir
    from uqcompress.tune.report import TUNE_JSON

    keep_freed_memory()
    conf = OmegaConf.to_container(cfg, resolve=True)
    set_cache_dir(conf.get("cache_dir"))
    out_dir, multirun = _hydra_state()
    if conf.get("resume", True) and (out_dir / TUNE_JSON).is_file():
        log.info("resume: %s already has %s; skipping (resume=false to recompute)", out_dir, TUNE_JSON)
        chosen = json.loads((out_dir / TUNE_JSON).read_text()).get("chosen")
        return chosen.get("compressed.flips") if chosen else None
    (out_dir / FAILED).unlink(missing_ok=True)
    try:
        return _run(conf, out_dir, multirun)
    except USER_ERRORS as e:
        msg = str(e).splitlines()[0] if str(e) else type(e).__name__
        if multirun:
            log.error("job failed: %s", msg)
            atomic_write_text(out_dir / FAILED, json.dumps(
                {"error": msg, "config": conf, "traceback": traceback.format_exc()}, indent=2, default=str))
            return None
        print(f"uqcompress.tune: error: {msg}", file=sys.stderr)
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


def _run(conf: dict, out_dir: Path, multirun: bool) -> float | None:
    from uqcompress.tune.report import render, write_outputs
    from uqcompress.tune.run import tune_config

    result = tune_config(conf, out_dir)
    path = write_outputs(result, out_dir, plots=bool(conf.get("plots", True)))
    render(result)
    log.info("tune: %s (%d model evaluations: %s; %.0f s)", path, sum(result.evaluations.get(k, 0) for k in
             ("logits", "calibration")), result.evaluations, result.seconds)
    if result.choice.chosen is None:
        print(f"uqcompress.tune: {result.message}", file=sys.stderr)
        if not multirun:
            sys.exit(NO_CANDIDATE)
        return None
    return result.chosen_metrics.get("compressed.flips")
