"""The Hydra job: resolve the config, run the pipeline, write results into the Hydra run directory."""
from __future__ import annotations

import logging
import sys
from pathlib import Path

from omegaconf import DictConfig, OmegaConf

from uqcompress.registry import UnknownNameError

log = logging.getLogger("uqcompress")

#: errors that are the user's input, not a bug: one line, exit code 2, no traceback
USER_ERRORS = (UnknownNameError, ValueError, FileNotFoundError, ModuleNotFoundError)


def run_dir() -> Path:
    try:
        from hydra.core.hydra_config import HydraConfig

        return Path(HydraConfig.get().runtime.output_dir)
    except Exception:  # called outside Hydra
        return Path.cwd()


def run_job(cfg: DictConfig) -> float | None:
    """Run one configured job and write ``results.json`` / ``predictions.csv``; returns compressed accuracy."""
    from uqcompress.cache import set_cache_dir
    from uqcompress.pipeline import run_config
    from uqcompress.report.results import write_results
    from uqcompress.report.table import render

    conf = OmegaConf.to_container(cfg, resolve=True)
    set_cache_dir(conf.get("cache_dir"))
    out_dir = run_dir()
    try:
        result = run_config(conf)
    except USER_ERRORS as e:
        msg = str(e).splitlines()[0] if str(e) else type(e).__name__
        print(f"uqcompress: error: {msg}", file=sys.stderr)
        log.debug("details", exc_info=True)
        sys.exit(2)
    path = write_results(out_dir, result.metrics, result.predictions)
    title = f"{conf['model']['name']} × {conf['quant']['name']} on {conf['data']['name']} " \
            f"(uncertainty={conf['uncertainty']['name']}, selector={conf['selector']['name']})"
    render(result.metrics, title=title)
    log.info("results: %s", path)
    return result.metrics.get("compressed.accuracy")
