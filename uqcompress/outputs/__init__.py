"""Stored outputs of runs made elsewhere, in place of model + quant + data (``outputs=lm_eval | arrays``).

A source is registered under its Hydra config name (``conf/outputs/<name>.yaml``) as a function
``fn(**options, seed) -> StoredOutputs``; ``outputs=none`` (the default) means uqcompress runs the models itself.
The same pipeline then scores, selects and measures the stored outputs (:func:`uqcompress.pipeline.evaluate_stored`).
Only scorers and selectors that work from outputs apply (msp, entropy, margin, energy, temperature scaling);
those that need the model (MC-dropout passes, penultimate features) are refused in one line before any work.

Example:
    >>> from uqcompress.outputs import SOURCES
    >>> SOURCES.names()
    ['arrays', 'lm_eval']
"""
from __future__ import annotations

from typing import Any

from uqcompress.registry import Registry

SOURCES = Registry("outputs", package="uqcompress.outputs")
#: what a stored-outputs run cannot give a scorer or selector: both need the model itself
MODEL_NEEDS = {"mc": "MC-dropout passes", "features": "penultimate features"}


def load_outputs(cfg: dict, seed: int = 0) -> Any:
    """The :class:`~uqcompress.outputs.base.StoredOutputs` that ``cfg`` (the ``outputs`` group) names."""
    from uqcompress.uncertainty.options import check_options

    name = cfg.get("name", "none")
    opts = {k: v for k, v in dict(cfg).items() if k != "name"}
    factory = SOURCES.get(name)
    check_options("outputs", name, factory, {**opts})
    return factory(**opts, seed=seed)


def check_needs(cfg: dict, source: str) -> None:
    """One line refusing, before any work, a scorer (``cfg["uncertainty"]``) or selector (``cfg["selector"]``) that
    needs the model itself.

    >>> check_needs({"uncertainty": {"name": "msp"}, "selector": {"name": "mc_interval"}}, "lm_eval")
    Traceback (most recent call last):
    ...
    ValueError: selector=mc_interval needs the model (MC-dropout passes), but outputs=lm_eval holds only stored outputs; use uncertainty=msp, entropy, margin or energy (uncertainty.temperature=true adds temperature scaling) and selector=coverage, risk or threshold
    """
    from uqcompress.selection import build_selector
    from uqcompress.uncertainty import build_scorer

    for group, build in (("uncertainty", build_scorer), ("selector", build_selector)):
        missing = [MODEL_NEEDS[n] for n in sorted(build(dict(cfg[group])).needs) if n in MODEL_NEEDS]
        if missing:
            raise ValueError(f"{group}={cfg[group]['name']} needs the model ({', '.join(missing)}), but "
                             f"outputs={source} holds only stored outputs; use uncertainty=msp, entropy, margin or "
                             "energy (uncertainty.temperature=true adds temperature scaling) and selector=coverage, "
                             "risk or threshold")


def unused_overrides() -> list[str]:
    """Command-line overrides of groups a stored-outputs run does not use (``model=...``, ``quant.x=...``, ...),
    read from Hydra when it runs this job; [] otherwise."""
    try:
        from hydra.core.hydra_config import HydraConfig

        task = list(HydraConfig.get().overrides.task)
    except Exception:  # not under Hydra (Python API, tests)
        return []
    groups = ("model", "quant", "data", "ood", "latency", "batch_size", "device")
    return [o for o in task if o.split("=", 1)[0].lstrip("+~").split(".", 1)[0] in groups]


__all__ = ["MODEL_NEEDS", "SOURCES", "check_needs", "load_outputs", "unused_overrides"]
