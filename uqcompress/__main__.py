"""``python -m uqcompress [overrides]``: the Hydra app. ``--multirun`` sweeps; ``--help`` lists config groups.

Exit status: 0 on success, 2 for a one-line user or disk error, 1 when a sweep had failed jobs (listed in one line).
"""
from __future__ import annotations

import sys

import hydra
from omegaconf import DictConfig

from uqcompress._compat import install_shim
from uqcompress.config_errors import install as install_config_errors
from uqcompress.help import register as register_help

install_shim()  # before anything imports torchvision
install_config_errors()  # typos (quant=int9, selector.targt=...): one line with the close match, exit 2
register_help()  # ${uqcompress_help:}: --help built from the YAMLs' comments (uqcompress/help.py)


@hydra.main(version_base=None, config_path="conf", config_name="config")
def app(cfg: DictConfig) -> float | None:
    from uqcompress.app import run_job

    return run_job(cfg)


def main() -> None:
    app()
    from uqcompress.app import sweep_failure_line

    line = sweep_failure_line()
    if line:
        print(line, file=sys.stderr)
        sys.exit(1)


if __name__ == "__main__":
    main()
