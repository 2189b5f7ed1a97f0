"""The Hydra job of ``python -m uqcompress.tune``: resolve the config, tune, write the run folder.

Resume is bound to the config and its input files, as the main run's (:mod:`uqcompress.app`, one rule:
:func:`uqcompress.run_files.may_resume`): ``tune.json`` records ``fingerprint`` (:func:`uqcompress.app.run_fingerprint`
of the resolved config: budget, tune options, model, data, ...) and ``run.inputs`` (size, mtime, sha256 of every file
the config names), and only a folder whose ``tune.json`` has this run's fingerprint, on unchanged input files, with
its ``deploy.export`` file in place, is skipped (exit 3 again when it chose nothing). A folder holding
another config's tune is refused in a single run (exit 2; ``resume=false`` recomputes there) and recomputed in a sweep;
an unreadable (truncated) ``tune.json`` is recomputed. A recompute sets the old ``tune.json``, ``results.json`` and
``predictor.pt`` aside (``*.previous.*``), so no file of the old tune is left as current.

Errors that are the user's input (:data:`uqcompress.app.USER_ERRORS`) are one line on stderr and exit code 2, raised
before any model work where they can be; when no candidate meets the budget the run folder still gets ``tune.json``
(``chosen: null``, the closest candidate and what it misses), one line says so and the exit code is 3. In a
``--multirun`` sweep a failing job writes ``failed.json`` and the sweep goes on.
"""
from __future__ import annotations

import json
import logging
import os
import sys
import traceback
from pathlib import Path

from omegaconf import DictConfig, OmegaConf

from uqcompress.app import FAILED, USER_ERRORS, _hydra_state, run_fingerprint

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
    fp = run_fingerprint(conf)
    try:
        if conf.get("resume", True):
            done = _resume(out_dir, fp, multirun, conf)
            if done is not None:
                (out_dir / FAILED).unlink(missing_ok=True)
                chosen = done.get("chosen")
                if not chosen and not multirun:
                    print(f"uqcompress.tune: {done.get('message', 'no candidate meets the budget')}", file=sys.stderr)
                    sys.exit(NO_CANDIDATE)
                return chosen.get("compressed.flips") if chosen else None
        _set_aside(out_dir)
        (out_dir / FAILED).unlink(missing_ok=True)
        return _run(conf, out_dir, multirun, fp)
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


#: what a recompute sets aside (``name`` -> ``stem.previous.suffix``): the old tune's files must not stay current
OLD_OUTPUTS = ("tune.json", "results.json", "predictions.csv", "predictor.pt")


def _resume(out_dir: Path, fp: str, multirun: bool, conf: dict) -> dict | None:
    """The finished tune.json to resume from, or None to compute (:func:`uqcompress.run_files.may_resume` decides:
    same config, same input files, its export in place); refuses another config's folder in a single run."""
    from uqcompress.run_files import may_resume
    from uqcompress.tune.report import TUNE_JSON

    path = out_dir / TUNE_JSON
    if not path.is_file():
        return None
    try:
        done = json.loads(path.read_text())
        if not isinstance(done, dict):
            raise ValueError(f"a {type(done).__name__}, not a mapping")
    except (ValueError, UnicodeDecodeError) as e:  # JSONDecodeError is a ValueError
        log.warning("resume: %s is unreadable (%s); recomputing", path, str(e).splitlines()[0][:120])
        return None
    record = {**done, "run.export": (done.get("chosen") or {}).get("run.export")}
    ok = may_resume(out_dir, record, fp, conf, multirun, held="a tune", fingerprint_key="fingerprint",
                    kept="old files kept as *.previous.*")
    return done if ok else None


def _set_aside(out_dir: Path) -> None:
    for name in OLD_OUTPUTS:
        if (out_dir / name).is_file():
            stem, _, suffix = name.rpartition(".")
            os.replace(out_dir / name, out_dir / f"{stem}.previous.{suffix}")


def _run(conf: dict, out_dir: Path, multirun: bool, fp: str) -> float | None:
    from uqcompress.tune.report import render, write_outputs
    from uqcompress.tune.run import tune_config

    result = tune_config(conf, out_dir)
    from uqcompress.run_files import snapshot

    path = write_outputs(result, out_dir, plots=bool(conf.get("plots", True)), fingerprint=fp,
                         inputs=snapshot(conf))
    render(result)
    log.info("tune: %s (%d model evaluations: %s; %.0f s)", path, sum(result.evaluations.get(k, 0) for k in
             ("logits", "calibration")), result.evaluations, result.seconds)
    if result.choice.chosen is None:
        print(f"uqcompress.tune: {result.message}", file=sys.stderr)
        if not multirun:
            sys.exit(NO_CANDIDATE)
        return None
    return result.chosen_metrics.get("compressed.flips")
