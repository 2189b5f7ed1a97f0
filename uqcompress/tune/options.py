"""The ``tune:`` options and the plan of a run, checked before any model work.

Example:
    >>> from uqcompress.tune.options import TuneOptions
    >>> TuneOptions.from_config({"schemes": ["int8"]}).rankings
    ('revert', 'alone')
    >>> TuneOptions.from_config({"schemes": ["int8"], "ranking": "alone"})  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    ValueError: unknown tune option(s) ['ranking']; tune options: schemes, rankings, ranking_samples, ...
"""
from __future__ import annotations

import logging
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

from uqcompress.tune.budget import Budget
from uqcompress.tune.sensitivity import RANKINGS

CONF = Path(__file__).resolve().parents[1] / "conf"
log = logging.getLogger("uqcompress.tune")


def _int(key: str, value: Any, low: int, allow_none: bool = False) -> int | None:
    if value is None and allow_none:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or value < low:
        raise ValueError(f"tune.{key}={value!r} must be an integer >= {low}{' or null' if allow_none else ''}")
    return int(value)


@dataclass(frozen=True)
class TuneOptions:
    """``tune:`` options (see ``conf/tune.yaml``)."""

    schemes: tuple[str, ...] = ("int8",)
    rankings: tuple[str, ...] = RANKINGS
    ranking_samples: int = 128
    control_max_drop: float = 0.01
    max_float_layers: int | None = None
    export: bool = True
    bootstrap: int = 1000
    #: recipe chains tried on every scheme that accepts recipes, before any layer is kept float (``none``: as is)
    recipes: tuple[tuple[str, ...], ...] = ((), ("@onednn",), ("distill", "@onednn"))

    @classmethod
    def from_config(cls, cfg: dict[str, Any] | None) -> "TuneOptions":
        cfg = dict(cfg or {})
        names = [f.name for f in fields(cls)]
        unknown = sorted(set(cfg) - set(names))
        if unknown:
            raise ValueError(f"unknown tune option(s) {unknown}; tune options: {', '.join(names)}")
        d = cls()
        schemes = cfg.get("schemes", d.schemes)
        if isinstance(schemes, str):
            schemes = [schemes]
        if not schemes or not all(isinstance(s, str) for s in schemes):
            raise ValueError(f"tune.schemes={schemes!r} must be a non-empty list of quant scheme names, "
                             "e.g. tune.schemes=[int8,int8_dynamic]")
        if len(set(schemes)) != len(schemes):
            raise ValueError(f"tune.schemes={list(schemes)} names a scheme twice")
        rankings = cfg.get("rankings", d.rankings)
        if isinstance(rankings, str):
            rankings = [rankings]
        if not rankings or any(r not in RANKINGS for r in rankings) or len(set(rankings)) != len(rankings):
            raise ValueError(f"tune.rankings={rankings!r} must list one or both of: {', '.join(RANKINGS)}")
        max_drop = cfg.get("control_max_drop", d.control_max_drop)
        if isinstance(max_drop, bool) or not isinstance(max_drop, (int, float)) or not 0 <= max_drop <= 1:
            raise ValueError(f"tune.control_max_drop={max_drop!r} must be an accuracy drop in [0, 1]")
        export = cfg.get("export", d.export)
        if not isinstance(export, bool):
            raise ValueError(f"tune.export={export!r} must be true or false")
        recipes = cfg.get("recipes", [chain_text(r) for r in d.recipes])
        if isinstance(recipes, str):
            recipes = [recipes]
        chains = []
        for r in recipes or []:
            chain = parse_chain(r)
            if chain in chains:
                raise ValueError(f"tune.recipes={list(recipes)!r} names a recipe chain twice")
            chains.append(chain)
        if not chains:
            raise ValueError("tune.recipes=[] must list at least one recipe chain, e.g. [none, bias_correction]")
        return cls(schemes=tuple(schemes), rankings=tuple(rankings), recipes=tuple(chains),
                   ranking_samples=_int("ranking_samples", cfg.get("ranking_samples", d.ranking_samples), 8),
                   control_max_drop=float(max_drop),
                   max_float_layers=_int("max_float_layers", cfg.get("max_float_layers"), 1, allow_none=True),
                   export=export, bootstrap=_int("bootstrap", cfg.get("bootstrap", d.bootstrap), 100))


def scheme_config(name: str, cfg: dict) -> dict:
    """The config of candidate scheme ``name``: the run's ``quant`` when it names that scheme (so ``quant.*``
    overrides apply), else ``conf/quant/<name>.yaml``, else just the name. Unknown names fail in one line."""
    from omegaconf import OmegaConf

    from uqcompress.compress import SCHEMES

    SCHEMES.get(name)  # UnknownNameError, one line, listing the schemes
    quant = dict(cfg.get("quant") or {})
    if quant.get("name") == name:
        return quant
    path = CONF / "quant" / f"{name}.yaml"
    if path.is_file():
        return dict(OmegaConf.to_container(OmegaConf.load(path), resolve=True))
    return {"name": name}


def parse_chain(entry: Any) -> tuple[str, ...]:
    """A ``tune.recipes`` entry as a chain: recipe names in order, then ``@backend`` when one is named.

    >>> parse_chain("none"), parse_chain("peg+bias_correction"), parse_chain("distill@onednn"), parse_chain(["minmax"])
    ((), ('peg', 'bias_correction'), ('distill', '@onednn'), ('minmax',))
    """
    text = entry if isinstance(entry, str) else "+".join(str(n) for n in entry)
    names, _, backend = text.partition("@")
    chain = tuple(n for n in names.split("+") if n and n != "none")
    return chain + ((f"@{backend}",) if backend else ())


def chain_text(chain: tuple[str, ...]) -> str:
    """The inverse of :func:`parse_chain` (``none`` for the scheme as is)."""
    names = "+".join(n for n in chain if not n.startswith("@")) or "none"
    return names + "".join(n for n in chain if n.startswith("@"))


def recipe_variants(quant: dict, chains: tuple[tuple[str, ...], ...]) -> list[dict]:
    """``quant`` with each recipe chain (``quant.recipe``; ``@backend`` sets ``quant.backend``), for a scheme that
    accepts recipes and has none set; the chains it cannot take (an unknown recipe, or one its registry entry does not
    accept) are left out with a log line.

    >>> [q.get("recipe") for q in recipe_variants({"name": "int8"}, ((), ("bias_correction",)))]
    [None, ['bias_correction']]
    >>> recipe_variants({"name": "fp16"}, ((), ("bias_correction",)))
    [{'name': 'fp16'}]
    """
    from uqcompress.compress import SCHEMES
    from uqcompress.compress.recipes import check_recipes

    accepted = SCHEMES.get(quant["name"]).recipes
    if not accepted or quant.get("recipe"):  # no recipes, or the user chose one: the scheme as given
        return [quant]
    out = []
    for chain in chains:
        names = [n for n in chain if not n.startswith("@")]
        backend = {"backend": n[1:] for n in chain if n.startswith("@")}
        if backend and "backend" not in SCHEMES.get(quant["name"]).options:
            log.info("tune: not trying quant=%s with %s: the scheme has no quant.backend", quant["name"],
                     chain_text(chain))
            continue
        if not names:
            out.append({**quant, **backend})
            continue
        try:
            check_recipes(quant["name"], names, quant.get("mode") if quant.get("mode") != "auto" else None,
                          accepted)
        except ValueError as e:
            log.info("tune: not trying quant=%s with recipe %s: %s", quant["name"], chain_text(chain), e)
            continue
        out.append({**quant, **backend, "recipe": names})
    return out


@dataclass
class TunePlan:
    """A checked run: the merged config, its options and budget, each candidate's scheme config, the config every
    evaluation uses (the budget's risk selector when there is one) and where the chosen model is exported."""

    cfg: dict
    options: TuneOptions
    budget: Budget
    schemes: list[dict]
    eval_cfg: dict
    export_path: Path | None


#: top-level keys only ``python -m uqcompress.tune`` reads (the rest is the main command's config)
TUNE_KEYS = ("tune", "budget")


def plan_tune(cfg: dict, out_dir: str | Path | None = None) -> TunePlan:
    """Check everything a tune run needs before any model work; one-line ``ValueError`` / ``UnknownNameError``."""
    from uqcompress.predictor import check_exportable
    from uqcompress.selection import SELECTORS, build_selector
    from uqcompress.validate import validate_config

    options = TuneOptions.from_config(cfg.get("tune"))
    budget = Budget.from_config(cfg.get("budget"))
    cfg = {k: v for k, v in cfg.items() if k not in TUNE_KEYS}  # what every evaluation shares with the main command
    schemes = [q for n in options.schemes for q in recipe_variants(scheme_config(n, cfg), options.recipes)]
    selector = budget.selector(SELECTORS.names()) or dict(cfg["selector"])
    build_selector(selector)  # bad options fail now, not after the first model
    eval_cfg = {**cfg, "selector": selector}
    for q in schemes:  # every group and option of each candidate's run, as the main command checks them
        validate_config({**eval_cfg, "quant": q})
    deploy = dict(cfg.get("deploy") or {})
    export_path = None
    if options.export and (deploy.get("export") or out_dir is not None):
        export_path = Path(deploy.get("export") or Path(out_dir) / "predictor.pt")
        for q in schemes:
            try:
                check_exportable({**cfg, "quant": q, "deploy": {"export": str(export_path), "model": "compressed"}})
            except ValueError as e:
                raise ValueError(f"{e}; or set tune.export=false") from None
    return TunePlan(cfg, options, budget, schemes, eval_cfg, export_path)


__all__ = ["TuneOptions", "TunePlan", "plan_tune", "scheme_config"]
