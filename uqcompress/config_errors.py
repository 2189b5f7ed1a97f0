"""Config typos on the command line in one line with the close match, exit 2, as for every other config error.

Hydra reports an unknown choice (``quant=int9``) as a 25-line list and an unknown key (``selector.targt=0.8``) as
"To append to your config use +selector.targt=0.8", both with exit code 1. :func:`install` wraps Hydra's config
loading so these become ``uqcompress: error: ...`` lines naming the close match (exit 2); every other error is
Hydra's, unchanged. ``HYDRA_FULL_ERROR=1`` still shows Hydra's own report.

Example:
    >>> print(choice_error("quant", "int9"))  # doctest: +ELLIPSIS
    quant=int9: no such choice (did you mean quant=int8?); the choices: ...
    >>> print(key_error("selector.targt", ["selector=coverage"]))
    selector.targt=...: selector 'coverage' has no option 'targt' (did you mean selector.target?); its options: name, target; +selector.targt=VALUE adds a new key
"""
from __future__ import annotations

import difflib
import os
import re
import sys
from pathlib import Path
from typing import Any, Sequence

CONF = Path(__file__).parent / "conf"


def _choices(group: str) -> list[str]:
    return sorted(p.stem for p in (CONF / group).glob("*.yaml"))


def _close(word: str, words: Sequence[str]) -> str | None:
    close = difflib.get_close_matches(word, list(words), n=1, cutoff=0.6)
    return close[0] if close else None


def choice_error(group: str, name: str) -> str:
    """The line for an unknown choice of a config group."""
    choices = _choices(group)
    close = _close(name, choices)
    hint = f" (did you mean {group}={close}?)" if close else ""
    return f"{group}={name}: no such choice{hint}; the choices: {', '.join(choices)}"


def _chosen(group: str, overrides: Sequence[str]) -> str | None:
    """The group's choice: from the overrides, else config.yaml's defaults list."""
    for o in overrides:
        key, _, value = o.partition("=")
        if key.lstrip("+~") == group and value and "," not in value:
            return value
    from omegaconf import OmegaConf

    for entry in OmegaConf.to_container(OmegaConf.load(CONF / "config.yaml"))["defaults"]:
        if isinstance(entry, dict) and group in entry:
            return str(entry[group])
    return None


def key_error(key: str, overrides: Sequence[str], config_name: str = "config") -> str:
    """The line for an override of a key the config does not have (``selector.targt``, ``limt``)."""
    from omegaconf import OmegaConf

    parts = key.split(".")
    if (CONF / parts[0]).is_dir():
        choice = _chosen(parts[0], overrides)
        path = CONF / parts[0] / f"{choice}.yaml"
        node: Any = OmegaConf.to_container(OmegaConf.load(path)) if path.is_file() else {}
        owner, prefix, rest = f"{parts[0]} '{choice}'", parts[0], parts[1:]
    else:
        node = OmegaConf.to_container(OmegaConf.load(CONF / "config.yaml"))
        top = CONF / f"{config_name}.yaml"
        if config_name != "config" and top.is_file():  # e.g. tune.yaml, which composes config.yaml
            node.update(OmegaConf.to_container(OmegaConf.load(top)))
        owner, prefix, rest = "the config", "", parts
    last = rest[-1] if rest else key
    for p in rest[:-1]:  # down to the dict that lacks a part
        if not isinstance(node, dict) or p not in node:
            last = p
            break
        node, prefix = node[p], f"{prefix}.{p}" if prefix else p
        owner = prefix
    options = sorted(k for k in (node if isinstance(node, dict) else {}) if k not in ("defaults", "hydra"))
    close = _close(last, options)
    hint = f" (did you mean {prefix + '.' if prefix else ''}{close}?)" if close else ""
    listed = f"; its options: {', '.join(options)}" if 0 < len(options) <= 12 else ""
    return f"{key}=...: {owner} has no option '{last}'{hint}{listed}; +{key}=VALUE adds a new key"


def one_line(exc: BaseException, overrides: Sequence[str], config_name: str = "config") -> str | None:
    """The one line for a Hydra composition error that is a typo, else None (Hydra reports it)."""
    from hydra.errors import MissingConfigException

    if isinstance(exc, MissingConfigException) and exc.missing_cfg_file and "/" in str(exc.missing_cfg_file):
        group, _, name = str(exc.missing_cfg_file).rpartition("/")
        if (CONF / group).is_dir():
            return choice_error(group, name)
    m = re.match(r"Could not override '([^']+)'", str(exc))
    if m and "not in struct" in str(exc.__cause__ or "") + str(exc):
        return key_error(m.group(1), overrides, config_name)
    return None


def install() -> None:
    """Wrap Hydra's config loading: typos exit 2 with :func:`one_line`'s line (idempotent)."""
    from hydra._internal.config_loader_impl import ConfigLoaderImpl
    from hydra.errors import ConfigCompositionException

    original = ConfigLoaderImpl.load_configuration
    if getattr(original, "_uq_wrapped", False):
        return

    def load_configuration(self: Any, config_name: Any, overrides: list, *args: Any, **kwargs: Any) -> Any:
        try:
            return original(self, config_name, overrides, *args, **kwargs)
        except ConfigCompositionException as e:
            line = None if os.environ.get("HYDRA_FULL_ERROR") == "1" else one_line(e, list(overrides), str(config_name or "config"))
            if line is None:
                raise
            print(f"uqcompress: error: {line}", file=sys.stderr)
            sys.exit(2)

    load_configuration._uq_wrapped = True  # type: ignore[attr-defined]
    ConfigLoaderImpl.load_configuration = load_configuration  # type: ignore[method-assign]
