"""Check a whole run config before any data or model work, so a typo costs a second, not a trained model.

:func:`validate_config` checks, from the config alone:

* the top-level keys (those of ``conf/config.yaml``) and their ranges: ``limit``, ``seed``, ``batch_size``,
  ``threads``, ``device``, the ``latency`` settings, the on/off switches;
* every config group through :func:`validate_group`: ``uncertainty`` and ``selector`` by building the scorer and the
  selector (their constructors check their options), ``data`` and ``ood`` against the options their loaders
  declare (:func:`uqcompress.data.declare`), ``model`` and ``quant`` by name and, where their registry entries
  declare them, their options (see :func:`validate_group` for the hook);
* modalities that cannot meet: an image OOD set for a text data set, a language model on images. The error names the
  override to add (``model=smollm2`` alone: "add data=bigbench_mc ood=none").

All problems are reported together as one line (:class:`ConfigError`, a ``ValueError``: the CLI prints it as
``uqcompress: error: ...`` and exits 2).

Example:
    >>> from uqcompress.validate import validate_config
    >>> validate_config({"data": {"name": "mnist"}, "selector": {"name": "coverage", "targt": 0.5}, "limit": 0})
    Traceback (most recent call last):
    ...
    uqcompress.validate.ConfigError: 2 problems in the config: limit=0 must be a whole number >= 1, or null for all; selector 'coverage' has no option 'targt'; its options: target (did you mean selector.target?)
"""
from __future__ import annotations

import difflib
import functools
import math
import numbers
import re
from pathlib import Path
from typing import Any, Callable, Iterable

from uqcompress.data.base import count, flag

#: the config groups, in the order they are checked
GROUPS = ("model", "quant", "uncertainty", "selector", "data", "ood", "deploy", "outputs")
#: groups a run from stored outputs (``outputs=lm_eval | arrays``) does not use: not checked there
STORED_SKIPS = ("model", "quant", "data", "ood", "deploy")
#: model options the pipeline itself reads, valid for every model (``model.latency``, ``model.inference_batch_size``)
PIPELINE_MODEL_OPTIONS = {"name": None, "latency": None, "inference_batch_size": count}


class ConfigError(ValueError):
    """A config that cannot run, said in one line (all problems at once)."""


def validate_config(cfg: dict) -> None:
    """Raise :class:`ConfigError` naming every problem :mod:`this module <uqcompress.validate>` finds in ``cfg``.

    ``cfg`` is the resolved run config (what Hydra composes, or the dict given to
    :func:`uqcompress.pipeline.run_config`); groups it lacks are not checked.
    """
    problems = _top_level(cfg)
    stored = (cfg.get("outputs") or {}).get("name", "none") != "none"  # outputs=...: no model, scheme or data
    for group in GROUPS:
        if isinstance(cfg.get(group), dict) and not (stored and group in STORED_SKIPS):
            problems += validate_group(group, cfg)
    try:
        problems += [] if stored else _modalities(cfg)
    except KeyError:  # an unknown name, already reported
        pass
    if problems:
        head = f"{len(problems)} problems in the config: " if len(problems) > 1 else ""
        raise ConfigError(head + "; ".join(problems))


# ---- top level ---------------------------------------------------------------------------------------------------
@functools.lru_cache(maxsize=1)
def top_level_keys() -> frozenset[str]:
    """The keys of ``conf/config.yaml`` (one source of truth for the CLI and the Python API) plus the groups."""
    from omegaconf import OmegaConf

    conf = OmegaConf.load(Path(__file__).parent / "conf" / "config.yaml")
    return frozenset(set(conf.keys()) - {"defaults", "hydra"}) | frozenset(GROUPS)


def _int_at_least(lo: int) -> Callable[[Any, str], None]:
    def check(value: Any, key: str) -> None:
        if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < lo:
            raise ValueError(f"{key}={value!r} must be a whole number >= {lo}")
    return check


def _device(value: Any, key: str) -> None:
    from uqcompress.runner import resolve_device  # auto | cpu | cuda | cuda:N, and is that device here?

    resolve_device(value)


def _optional_str(value: Any, key: str) -> None:
    if value is not None and not isinstance(value, (str, Path)):
        raise ValueError(f"{key}={value!r} must be a path or null")


TOP_LEVEL_CHECKS: dict[str, Callable[[Any, str], None]] = {
    "seed": _int_at_least(0), "device": _device, "limit": count, "fit_limit": count, "batch_size": count,
    "threads": count,
    "progress": flag, "resume": flag, "plots": flag, "cache_dir": _optional_str,
}
LATENCY_CHECKS = {"batch_size": _int_at_least(1), "repeats": _int_at_least(1), "warmup": _int_at_least(0),
                  "threads": count}


def _top_level(cfg: dict) -> list[str]:
    problems = [_unknown("", k, top_level_keys()) for k in cfg if k not in top_level_keys()]
    problems += _run_checks(cfg, TOP_LEVEL_CHECKS, "")
    latency = cfg.get("latency")
    if isinstance(latency, dict):
        problems += [_unknown("latency.", k, LATENCY_CHECKS) for k in latency if k not in LATENCY_CHECKS]
        problems += _run_checks(latency, LATENCY_CHECKS, "latency.")
    return problems


# ---- groups ------------------------------------------------------------------------------------------------------
def validate_group(group: str, cfg: dict) -> list[str]:
    """The problems of one config group ``cfg[group]`` (an empty list when it is fine).

    Hook for registry entries (``model``, ``quant``; data loaders use the same one): an entry may carry

    * ``options``: the option names it reads, or {name: ``check(value, key)`` or None} where a check raises a
      one-line ``ValueError`` for a bad value; any other key is reported with its close matches;
    * ``validate(opts: dict)``: a callable raising a one-line ``ValueError`` for options that are wrong together.

    An entry with neither is checked by name only.
    """
    opts = dict(cfg.get(group) or {})
    name = opts.get("name")
    if group == "deploy":
        return _deploy(opts)
    if not isinstance(name, str):
        return [f"{group} has no name: choose {group}=NAME"]
    if group == "outputs" and name == "none":  # the default: uqcompress runs the models itself
        return []
    try:
        if group == "uncertainty":
            from uqcompress.uncertainty import build_scorer

            build_scorer(opts)
            return []
        if group == "selector":
            from uqcompress.selection import build_selector

            build_selector(opts)
            return []
        if group in ("data", "ood"):
            return _dataset(group, name, opts)
        registry = _registry(group)
        entry = registry.get(name)
    except (ValueError, TypeError, KeyError) as e:  # UnknownNameError is a KeyError
        return [_with_hint(group, str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__)]
    known = dict(PIPELINE_MODEL_OPTIONS) if group == "model" else {"name": None}
    return _entry_options(group, name, entry, opts, known)


def _registry(group: str) -> Any:
    if group == "model":
        from uqcompress.models import MODELS

        return MODELS
    if group == "quant":
        from uqcompress.compress import SCHEMES

        return SCHEMES
    if group == "outputs":
        from uqcompress.outputs import SOURCES

        return SOURCES
    raise KeyError(f"no registry for config group '{group}'")


def _facts(entry: Any, attr: str) -> Any:
    """``entry.<attr>``, looking through a registry entry to the function it wraps (``entry.fn``)."""
    value = getattr(entry, attr, None)
    return value if value is not None else getattr(getattr(entry, "fn", None), attr, None)


def _entry_options(group: str, name: str, entry: Any, opts: dict, known: dict) -> list[str]:
    declared = _facts(entry, "options")
    if declared is None:
        return []
    checks = {**known, **(declared if isinstance(declared, dict) else {k: None for k in declared})}
    if group == "model":  # training options, whatever the model calls them (epochs, head_epochs, e2e_batch_size)
        checks = {k: c if c is not None else _training_check(k) for k, c in checks.items()}
    problems = [_unknown(f"{group}.", k, checks, f"{group}={name}") for k in opts if k not in checks]
    problems += _run_checks(opts, checks, f"{group}.")
    validate = _facts(entry, "validate")
    if callable(validate) and not problems:
        try:
            validate(opts)
        except (ValueError, TypeError) as e:
            problems.append(str(e).splitlines()[0])
    return problems


def _training_check(key: str) -> Callable[[Any, str], None] | None:
    """The range of a model's training option by its name: ``*epochs`` >= 0 (0 = no training), ``*batch_size`` >= 1.

    >>> _training_check("head_epochs")(-3, "model.head_epochs")
    Traceback (most recent call last):
    ValueError: model.head_epochs=-3 must be a whole number >= 0
    """
    if key == "epochs" or key.endswith("_epochs"):
        return _int_at_least(0)
    if key == "batch_size" or (key.endswith("_batch_size") and key != "inference_batch_size"):
        return _int_at_least(1)
    return None


def _dataset(group: str, name: str, opts: dict) -> list[str]:
    if group == "ood" and name == "none":
        extra = sorted(set(opts) - {"name"})
        return [f"ood=none takes no options; drop {', '.join('ood.' + k for k in extra)} or choose an OOD set"] \
            if extra else []
    from uqcompress.data import DATASETS

    entry = DATASETS.get(name)
    known = {"name": None, "limit": count} if group == "ood" else {"name": None}
    return _entry_options(group, name, entry, opts, known)


def _deploy(opts: dict) -> list[str]:
    from uqcompress.predictor import deploy_problems

    known = {"export": _optional_str, "model": None, "fallback": None}
    problems = [_unknown("deploy.", k, known) for k in opts if k not in known]
    problems += _run_checks(opts, known, "deploy.")
    return problems + deploy_problems(opts)


# ---- modalities --------------------------------------------------------------------------------------------------
def _modality(group: str, name: str) -> str | None:
    """What a model takes / a data set yields, when its registry entry says so (None: unknown or it depends)."""
    if group in ("data", "ood"):
        from uqcompress.data import DATASETS

        return _facts(DATASETS.get(name), "modality")
    return _facts(_registry(group).get(name), "modality")


def _datasets_of(modality: str, exclude: Iterable[str] = (), group: str = "data") -> list[str]:
    """Choices of config group ``group`` (its YAMLs: ``data`` holds ID sets only) that yield ``modality``."""
    from uqcompress.data import DATASETS

    choices = sorted(p.stem for p in (Path(__file__).parent / "conf" / group).glob("*.yaml"))
    return [n for n in choices if n in DATASETS and _modality("data", n) == modality and n not in exclude]


def _modalities(cfg: dict) -> list[str]:
    model = (cfg.get("model") or {}).get("name")
    data = (cfg.get("data") or {}).get("name")
    ood = (cfg.get("ood") or {}).get("name", "none")
    m_model = _modality("model", model) if model else None
    m_data = _modality("data", data) if data else None
    m_ood = _modality("ood", ood) if ood and ood != "none" else None
    if m_model and m_data and m_model != m_data:
        fits = _datasets_of(m_model)
        pick = f"add data={fits[0]} ood=none" if fits else f"choose data of modality {m_model}"
        return [f"model={model} takes {m_model} inputs but data={data} is {m_data}; {pick}"
                + (f" (data sets of that kind: {', '.join(fits)})" if len(fits) > 1 else "")]
    if m_data and m_ood and m_data != m_ood:
        fits = [n for n in _datasets_of(m_data, group="ood") if n != data]
        other = f" or a {m_data} OOD set ({', '.join('ood=' + n for n in fits)})" if fits else ""
        return [f"ood={ood} is {m_ood} but data={data} is {m_data}; use ood=none{other}"]
    return []


# ---- once the data is known ---------------------------------------------------------------------------------------
#: fewest calibration samples a fitted selector needs on the rarer side of its target (see calibration_warnings)
MIN_RARER_SIDE = 10


class CalibrationWarning(UserWarning):
    """The calibration split is too small for what is fit on it."""


def calibration_warnings(selector_cfg: dict, n_calibration: int) -> list[str]:
    """Warnings (one line each) when the calibration split is too small for the selector's ``target``.

    A coverage target c is a quantile of the calibration confidences, a risk target r a proportion of errors among
    them: both are estimated from the samples on the rarer side of the target, n * min(t, 1 - t) of them (the
    abstentions of coverage 0.9, the errors of risk 0.05). Below 10 such samples the estimate of a binomial proportion
    is unreliable (relative standard error above 1/sqrt(10) = 0.32; the usual n*p >= 10 rule), so the threshold and
    what it achieves on new data can be far from the target: 1 calibration sample with coverage 0.9 gave a test
    coverage of 0.007. Selectors without a target (threshold, mc_interval) and targets of 0 or 1 get no warning.

    >>> calibration_warnings({"name": "coverage", "target": 0.9}, 50)  # doctest: +ELLIPSIS
    ['calibration split has 50 samples: too few for selector=coverage target=0.9 (50 x 0.1 = 5 expected on ...']
    >>> calibration_warnings({"name": "coverage", "target": 0.9}, 100)
    []
    """
    from uqcompress.selection import build_selector

    target = getattr(build_selector(dict(selector_cfg)), "target", None)
    if target is None:
        return []
    rarer = min(float(target), 1.0 - float(target))
    if rarer <= 0 or n_calibration * rarer >= MIN_RARER_SIDE - 1e-9:
        return []
    need = math.ceil(MIN_RARER_SIDE / rarer - 1e-9)
    s = "" if n_calibration == 1 else "s"
    return [f"calibration split has {n_calibration} sample{s}: too few for selector={selector_cfg['name']} "
            f"target={target:g} ({n_calibration} x {rarer:.3g} = {n_calibration * rarer:.2g} expected on the rarer side "
            f"of the target, {MIN_RARER_SIDE} needed: at least {need} calibration samples); its threshold and the "
            f"test coverage / risk may be far from the target"]


def warn_small_calibration(selector_cfg: dict, n_calibration: int) -> None:
    """Warn (:class:`CalibrationWarning`, one line each) with :func:`calibration_warnings`: the one check every door
    that fits a selector goes through (models the pipeline runs, ``uqcompress.evaluate``, stored outputs and
    ``uqcompress.evaluate_outputs``)."""
    import warnings

    for msg in calibration_warnings(dict(selector_cfg), int(n_calibration)):
        warnings.warn(msg, CalibrationWarning, stacklevel=3)


# ---- helpers -----------------------------------------------------------------------------------------------------
def _run_checks(opts: dict, checks: dict, prefix: str) -> list[str]:
    problems = []
    for key, check in checks.items():
        if check is not None and key in opts:
            try:
                check(opts[key], prefix + key)
            except (ValueError, TypeError) as e:
                problems.append(str(e).splitlines()[0])
    return problems


def _unknown(prefix: str, key: str, known: Iterable[str], owner: str | None = None) -> str:
    names = sorted(k for k in known if k != "name")
    close = difflib.get_close_matches(key, names, n=1)
    where = f"{owner} has no option '{key}'" if owner else f"unknown option '{prefix}{key}'"
    hint = f"; did you mean {prefix}{close[0]}?" if close else (f"; its options: {', '.join(names)}" if owner and names
                                                                else "")
    if key == "limit" and prefix in ("data.", "model.", "quant."):
        hint += " (limit=N caps the evaluated splits of the run, fit_limit=N the fit split)"
    return where + hint


def _with_hint(group: str, msg: str) -> str:
    """A constructor's one-line error plus a close match for an unknown option name ("has no option 'targt'")."""
    m = re.search(r"has no option '([^']+)'.*its options: (.*)$", msg)
    if m:
        close = difflib.get_close_matches(m.group(1), [o.strip() for o in m.group(2).split(",")], n=1)
        if close:
            msg += f" (did you mean {group}.{close[0]}?)"
    return msg


__all__ = ["CalibrationWarning", "ConfigError", "GROUPS", "calibration_warnings", "top_level_keys", "validate_config",
           "validate_group", "warn_small_calibration"]
