"""What a run was: its full resolved config, its overrides, the software, the code version and the machine.

Keys (flat, in ``results.json``):

- ``config.<group>`` is the choice of a config group (``config.quant = "int8"``), as before; every option of the
  resolved config is ``config.<path>`` (``config.selector.target = 0.9``, ``config.model.epochs = 16``); top-level
  settings are ``config.<key>`` (``config.seed``, ``config.limit``). Lists of scalars stay lists; any other list
  (``quant.steps`` of a chain) is its JSON text. ``config.device`` is what was asked (``auto``); where each model
  really ran is ``baseline.device`` / ``compressed.device``.
- ``run.overrides``: the command-line overrides of this job (Hydra's ``hydra.overrides.task``, a list), so
  ``python -m uqcompress <run.overrides>`` reruns it; ``run.command`` is that command, shell-quoted.
- ``run.started_at`` (ISO 8601, UTC) and ``run.duration_s`` (wall seconds from the job's start to its results).
- ``run.uqcompress_version``, ``run.python_version``, ``run.torch_version``, ``run.numpy_version`` and
  ``run.transformers_version`` (only when the run imported transformers).
- ``run.git_commit`` and ``run.git_dirty`` (tracked files changed) when uqcompress runs from a git checkout.
- ``run.hostname``, ``run.cpu_count``, ``run.platform``.

Example:
    >>> from uqcompress.report.provenance import config_facts
    >>> facts = config_facts({"seed": 0, "selector": {"name": "coverage", "target": 0.8}})
    >>> facts["config.selector"], facts["config.selector.target"], facts["config.seed"]
    ('coverage', 0.8, 0)
"""
from __future__ import annotations

import datetime as _dt
import json
import os
import platform
import shlex
import socket
import subprocess
import sys
from functools import lru_cache
from pathlib import Path
from typing import Any

#: top-level config keys that are not part of the run's config (Hydra's own)
_SKIP = ("hydra",)
_SCALAR = (str, int, float, bool, type(None))


def config_facts(cfg: dict[str, Any]) -> dict[str, Any]:
    """The resolved config as flat ``config.*`` keys: a group's choice at ``config.<group>``, options below it."""
    out: dict[str, Any] = {}

    def walk(prefix: str, node: Any) -> None:
        if isinstance(node, dict):
            if isinstance(node.get("name"), str):
                out[prefix] = node["name"]  # a config group: its key holds the choice, as readers expect
            for k, v in node.items():
                if k != "name" or not isinstance(v, str):
                    walk(f"{prefix}.{k}", v)
        elif isinstance(node, (list, tuple)):
            out[prefix] = (list(node) if all(isinstance(v, _SCALAR) for v in node)
                           else json.dumps(node, sort_keys=True, default=str))
        elif isinstance(node, _SCALAR):
            out[prefix] = node
        else:
            out[prefix] = str(node)

    for key, value in cfg.items():
        if key not in _SKIP:
            walk(f"config.{key}", value)
    return out


def hydra_overrides() -> list[str] | None:
    """This job's command-line overrides (``hydra.overrides.task``), or None outside a Hydra app."""
    try:
        from hydra.core.hydra_config import HydraConfig

        return [str(o) for o in HydraConfig.get().overrides.task]
    except Exception:  # not inside a Hydra app (Python API, tests)
        return None


def rerun_command(overrides: list[str]) -> str:
    """The shell command that reruns a job from its overrides.

    >>> rerun_command(["quant=int8", "data.path=my data/x.csv"])
    "python -m uqcompress quant=int8 'data.path=my data/x.csv'"
    """
    return shlex.join(["python", "-m", "uqcompress", *overrides])


@lru_cache(maxsize=1)
def git_state(folder: str | None = None) -> dict[str, Any]:
    """``{"git_commit", "git_dirty"}`` of the checkout that holds uqcompress's own source, else ``{}``.

    The package file must be tracked by that repository, so a uqcompress installed into a virtual environment that
    happens to sit inside some other repository reports nothing rather than that repository's commit.
    """
    pkg = Path(__file__).resolve().parents[1]
    root = Path(folder) if folder else pkg.parent

    def git(*args: str) -> str | None:
        try:
            r = subprocess.run(["git", "-C", str(root), *args], capture_output=True, text=True, timeout=10)
        except (OSError, subprocess.SubprocessError):
            return None
        return r.stdout.strip() if r.returncode == 0 else None

    if git("ls-files", "--error-unmatch", str(pkg / "__init__.py")) is None:
        return {}
    commit = git("rev-parse", "HEAD")
    if not commit:
        return {}
    status = git("status", "--porcelain", "--untracked-files=no")
    return {"git_commit": commit, "git_dirty": None if status is None else bool(status)}


def _version(module: str) -> str | None:
    mod = sys.modules.get(module)
    return getattr(mod, "__version__", None) if mod is not None else None


def environment_facts() -> dict[str, Any]:
    """Software versions, code version and machine as ``run.*`` keys (see the module docstring)."""
    import numpy
    import torch

    from uqcompress import __version__

    facts: dict[str, Any] = {
        "run.uqcompress_version": __version__,
        "run.python_version": platform.python_version(),
        "run.torch_version": torch.__version__,
        "run.numpy_version": numpy.__version__,
    }
    if _version("transformers"):  # only when this run used it
        facts["run.transformers_version"] = _version("transformers")
    facts.update({f"run.{k}": v for k, v in git_state().items()})
    facts.update({"run.hostname": socket.gethostname(), "run.cpu_count": os.cpu_count(),
                  "run.platform": platform.platform()})
    return facts


def iso_utc(timestamp: float) -> str:
    """ISO 8601 in UTC, to the second.

    >>> iso_utc(0)
    '1970-01-01T00:00:00Z'
    """
    return _dt.datetime.fromtimestamp(timestamp, _dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def run_facts(started: float, finished: float, overrides: list[str] | None = None) -> dict[str, Any]:
    """Timing, overrides and environment of one job as ``run.*`` keys."""
    facts: dict[str, Any] = {"run.started_at": iso_utc(started), "run.duration_s": round(finished - started, 3)}
    if overrides is not None:
        facts["run.overrides"] = list(overrides)
        facts["run.command"] = rerun_command(list(overrides))
    facts.update(environment_facts())
    return facts
