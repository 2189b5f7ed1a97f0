"""``python -m uqcompress.tune [overrides]``: the smallest compressed model whose answers stay the baseline's.

Shares every config group of ``python -m uqcompress`` (``conf/tune.yaml`` composes ``config.yaml``) and adds
``tune:`` and ``budget:``; ``--help`` lists them.
"""
from __future__ import annotations

import sys

import hydra
from omegaconf import DictConfig

from uqcompress._compat import install_shim
from uqcompress.config_errors import install as install_config_errors
from uqcompress.help import register as register_help

install_shim()  # before anything imports torchvision
register_help()  # ${uqcompress_help:}: --help built from the YAMLs' comments, tune.* and budget.* included
install_config_errors()  # typos (quant=int9, selector.targt=...): one line with the close match, exit 2


@hydra.main(version_base=None, config_path="../conf", config_name="tune")
def app(cfg: DictConfig) -> float | None:
    from uqcompress.tune.app import run_tune_job

    return run_tune_job(cfg)


def check_overrides(args: list[str]) -> str | None:
    """A one-line error for an override of an unknown ``budget.`` / ``tune.`` key (Hydra's own is several lines),
    None when every such key exists.

    >>> check_overrides(["budget.flips=0.03", "tune.schemes=[int8]", "model=minilm"]) is None
    True
    >>> check_overrides(["budget.flip=0.03"])
    "unknown budget key(s) ['flip']; budget keys: flips, kl, accuracy_drop, risk, coverage, delta"
    """
    from dataclasses import fields

    from uqcompress.tune.budget import KEYS
    from uqcompress.tune.options import TuneOptions

    known = {"budget": (KEYS, "budget key(s)", "budget keys"),
             "tune": ([f.name for f in fields(TuneOptions)], "tune option(s)", "tune options")}
    bad: dict[str, list[str]] = {}
    for arg in args:
        if arg.startswith("-") or "=" not in arg:
            continue
        key = arg.split("=", 1)[0].lstrip("+~")
        group, _, rest = key.partition(".")
        if group in known and rest and rest.split(".")[0] not in known[group][0]:
            bad.setdefault(group, []).append(rest.split(".")[0])
    for group, names in bad.items():
        keys, what, listing = known[group]
        return f"unknown {what} {sorted(set(names))}; {listing}: {', '.join(keys)}"
    return None


def main() -> None:
    msg = check_overrides(sys.argv[1:])
    if msg:
        print(f"uqcompress.tune: error: {msg}", file=sys.stderr)
        sys.exit(2)
    app()
    from uqcompress.app import sweep_failure_line

    line = sweep_failure_line()  # a sweep with failed jobs exits 1, as python -m uqcompress's
    if line:
        print(line.replace("uqcompress:", "uqcompress.tune:", 1), file=sys.stderr)
        sys.exit(1)


if __name__ == "__main__":
    main()
