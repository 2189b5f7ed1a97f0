"""``python -m uqcompress [overrides]``: the Hydra app. ``--multirun`` sweeps; ``--help`` lists config groups."""
from __future__ import annotations

import hydra
from omegaconf import DictConfig

from uqcompress._compat import install_shim
from uqcompress.help import register as register_help

install_shim()  # before anything imports torchvision
register_help()  # ${uqcompress_help:}: --help built from the YAMLs' comments (uqcompress/help.py)


@hydra.main(version_base=None, config_path="conf", config_name="config")
def app(cfg: DictConfig) -> float | None:
    from uqcompress.app import run_job

    return run_job(cfg)


def main() -> None:
    app()


if __name__ == "__main__":
    main()
