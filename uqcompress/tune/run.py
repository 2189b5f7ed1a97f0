"""One tune run: candidate schemes -> layer search where the smallest misses -> choice -> test confirmation.

Every model pass goes through the pipeline's runner (cached logits, logged in ``events.jsonl``); decisions use the
calibration split only, and the test split confirms them. See :mod:`uqcompress.tune` for the whole story.
"""
from __future__ import annotations

import dataclasses
import logging
import math
import os
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

from uqcompress import metrics as M
from uqcompress.cache import EVENTS, cache_dir, cached, fingerprint
from uqcompress.compress import SCHEMES, CompressContext, compress
from uqcompress.compress._state import transient
from uqcompress.compress.recipes import RecipeUnsupported
from uqcompress.models import BuildContext, build_model
from uqcompress.models.base import ModelBundle, module_device
from uqcompress.pipeline import (DEFAULTS, ModelEval, RunResult, _merge, evaluate_bundles, evaluate_model, load_data,
                                 run_config, start_run)
from uqcompress.runner import to_device
from uqcompress.tune.budget import Budget, measure_split
from uqcompress.tune.options import TunePlan, plan_tune
from uqcompress.tune.search import (Candidate, Choice, accuracy_control, better_ranking, choose, first_holding,
                                    greedy_effects, rank_agreement)
from uqcompress.tune.sensitivity import Sensitivity, rank_layers
from uqcompress.tune.swap import LayerSwap

log = logging.getLogger("uqcompress.tune")

#: results.json keys a candidate's table row shows (test split)
TEST_KEYS = ("compressed.model_size_bytes", "compressed.speedup", "compressed.accuracy", "compressed.accuracy_delta",
             "compressed.flips", "compressed.kl", "compressed.coverage", "compressed.selective_risk",
             "compressed.latency_ms_per_sample", "baseline.model_size_bytes", "baseline.accuracy",
             "compressed.recipe_seconds")


@dataclass
class Walk:
    """One ranking's walk over a candidate: ``steps[k]`` = calibration measures (and ``size_bytes``) with the first
    ``k`` layers of ``order`` float (swapped, see :mod:`uqcompress.tune.swap`); ``k`` = where the budget first held."""

    ranking: str
    order: list[str]
    steps: dict[int, dict[str, float]]
    evaluate: Callable[[list[str]], dict[str, float]] = field(repr=False)
    k: int | None = None

    def measures(self, k: int) -> dict[str, float]:
        if k not in self.steps:
            self.steps[k] = self.evaluate(self.order[:k])
        return self.steps[k]


@dataclass
class LayerSearch:
    """What the layer search found for one scheme candidate."""

    scheme: str
    layers: list[str]
    not_ranked: dict[str, str]
    sensitivity: Sensitivity
    walks: dict[str, Walk]
    better: str
    control_k: int | None
    comparison: dict[str, Any]
    seconds: float


@dataclass
class TuneResult:
    """Everything a tune run measured and decided (written as ``tune.json`` by :mod:`uqcompress.tune.report`)."""

    plan: TunePlan
    baseline: dict[str, Any]
    candidates: list[Candidate]
    searches: list[LayerSearch]
    choice: Choice
    chosen_metrics: dict[str, Any] | None
    run: RunResult | None
    evaluations: dict[str, int]
    seconds: float
    message: str

    @property
    def budget(self) -> Budget:
        return self.plan.budget


def _events_mark() -> int:
    path = cache_dir() / EVENTS
    return path.stat().st_size if path.is_file() else 0


def count_events(mark: int, pid: int | None = None) -> dict[str, int]:
    """Events this process appended to ``events.jsonl`` since ``mark`` (a byte offset), counted by kind."""
    import json

    path = cache_dir() / EVENTS
    counts: dict[str, int] = {}
    if not path.is_file():
        return counts
    pid = os.getpid() if pid is None else pid
    with open(path, "rb") as f:
        f.seek(mark)
        for line in f.read().decode("utf-8", "replace").splitlines():
            try:
                row = json.loads(line)
            except ValueError:
                continue
            if row.get("pid") == pid:
                counts[row["kind"]] = counts.get(row["kind"], 0) + 1
    return counts


def _test_row(metrics: dict[str, Any]) -> dict[str, Any]:
    return {k: metrics.get(k) for k in TEST_KEYS}


class _Tuner:
    """The state of one run (data, baseline, runner) and its steps; :func:`tune_config` drives it."""

    def __init__(self, plan: TunePlan) -> None:
        self.plan = plan
        cfg = plan.cfg
        self.runner = start_run(cfg)  # as the main command's run_config
        self.device = device = self.runner.device
        self.data, self.ood = load_data(cfg)
        self.baseline = build_model(dict(cfg["model"]), self.data,
                                    BuildContext(cfg["seed"], str(device), cfg["progress"], self.runner))
        self.runner.place(self.baseline)
        self.ctx = CompressContext(cfg["seed"], str(device), cfg["progress"], runner=self.runner)
        self.cal = self.data["calibration"]
        # the calibration split in the test slot: evaluate_model then measures a model on calibration only (both
        # slots are one cached pass, keyed by the split's content)
        self.cal_data = dataclasses.replace(self.data, splits={**self.data.splits, "test": self.cal})
        self.eval_cfg = {**plan.eval_cfg, "batch_size": cfg["batch_size"], "latency": cfg["latency"]}
        self.base_cal = evaluate_model(self.baseline, self.cal_data, None, self.eval_cfg, self.runner)
        self.bundles: dict[tuple, ModelBundle] = {}

    # ---- evaluation ---------------------------------------------------------------------------------------------
    def on_calibration(self, bundle: ModelBundle) -> tuple[ModelEval, dict[str, float]]:
        ev = evaluate_model(bundle, self.cal_data, None, self.eval_cfg, self.runner)
        m = measure_split(self.base_cal, ev, "calibration", ev.metrics["calibration_coverage"])
        m["size_bytes"] = ev.metrics["model_size_bytes"]
        return ev, m

    def on_test(self, cand: Candidate) -> None:
        bundle = self.bundle_of(cand)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", category=UserWarning)
            rr = evaluate_bundles(self.baseline, bundle, self.data, self.ood, self.eval_cfg, self.runner)
        cand.test = _test_row(rr.metrics)
        cand.test_measures = measure_split(rr.baseline, rr.compressed, "test", rr.compressed.metrics["coverage"])

    def describe(self, m: dict[str, float]) -> str:
        miss = self.plan.budget.describe(m)
        return (f"flips {m['flips']:.4f}, KL {m['kl']:.4g}, accuracy drop {m['accuracy_drop']:+.4f}, "
                f"coverage {m['coverage']:.3f}, size {m['size_bytes'] / self.base_size:.3f}x: "
                + ("budget holds" if not miss else f"misses {miss}"))

    @property
    def base_size(self) -> int:
        return int(self.base_cal.metrics["model_size_bytes"])

    # ---- candidates ---------------------------------------------------------------------------------------------
    def scheme_candidate(self, i: int, quant: dict) -> Candidate | None:
        """Scheme ``quant`` (with its recipe, if any) as is, measured on calibration; None when the model cannot take
        that recipe (e.g. an FX-only recipe on a model that runs per layer), which one log line says."""
        n = len(self.plan.schemes)
        name = candidate_name(quant)
        log.info("tune: candidate %d/%d: %s", i + 1, n, name)
        try:
            bundle = compress(self.baseline, dict(quant), self.cal.x, self.ctx)
        except RecipeUnsupported as e:  # this model can't take the chain; a config error still stops the tune
            log.info("tune: %s left out: %s", name, e)
            return None
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", category=UserWarning)  # torch.ao deprecation chatter
            rr = evaluate_bundles(self.baseline, bundle, self.data, self.ood, self.eval_cfg, self.runner)
        cal = measure_split(rr.baseline, rr.compressed, "calibration", rr.compressed.metrics["calibration_coverage"])
        cal["size_bytes"] = rr.metrics["compressed.model_size_bytes"]
        # the config as given (not bundle.quant, which has the resolved mode): the chosen model's plain run then
        # has the same fingerprint and reuses every cached pass
        cand = Candidate(name, "scheme", dict(quant), list(bundle.info.get("fp32_layers") or []),
                         int(cal["size_bytes"]), cal, _test_row(rr.metrics))
        cand.test_measures = measure_split(rr.baseline, rr.compressed, "test", rr.compressed.metrics["coverage"])
        self.bundles[cand.key()] = bundle
        log.info("tune: %s on calibration: %s", cand.name, self.describe(cal))
        return cand

    def variant_quant(self, base: Candidate, layers: list[str]) -> dict:
        """``base``'s scheme config with ``layers`` added to its ``quant.skip``."""
        return {**base.quant, "skip": list(base.quant.get("skip") or []) + list(layers)}

    def variant(self, base: Candidate, layers: list[str], name: str, role: str, ranking: str | None) -> Candidate:
        """The real ``quant.skip`` model of ``base`` with ``layers`` float, measured on calibration. Its calibration
        reuses the observer statistics of ``base``'s one calibration pass; the measures are cached (kind
        ``tune_step``), the model is not (a rerun rebuilds only what it evaluates on the test split)."""
        quant = self.variant_quant(base, layers)
        key = fingerprint("tune_step", self.baseline.fingerprint, quant, self.cal.fingerprint(),
                          self.eval_cfg["uncertainty"], self.eval_cfg["selector"], self.device.type)

        def measure() -> dict[str, Any]:
            with transient():
                bundle = compress(self.baseline, quant, self.cal.x, self.ctx)
            _, m = self.on_calibration(bundle)
            return {"measures": m, "fp32_layers": list(bundle.info.get("fp32_layers") or [])}

        out = cached("tune_step", key, measure, log=log.debug)
        m = dict(out["measures"])
        return Candidate(name, role, quant, list(out["fp32_layers"]), int(m["size_bytes"]), m, ranking=ranking)

    def bundle_of(self, cand: Candidate) -> ModelBundle:
        """The model of a candidate (built again, from the cached observer statistics, when the search only kept
        its measures)."""
        if cand.key() not in self.bundles:
            with transient():
                self.bundles[cand.key()] = compress(self.baseline, cand.quant, self.cal.x, self.ctx)
        return self.bundles[cand.key()]

    # ---- layer search -------------------------------------------------------------------------------------------
    def search(self, cand: Candidate) -> tuple[LayerSearch, list[Candidate]]:
        """Rank ``cand``'s layers (swaps, ranking subset), walk each ranking with real ``quant.skip`` models until
        the budget holds on calibration, then the accuracy-only control on the better ranking."""
        t0 = time.perf_counter()
        plan, budget = self.plan, self.plan.budget
        scheme = SCHEMES.get(cand.quant["name"])
        comp = self.bundles[cand.key()]
        layers = [n for n in scheme.skip_layers(self.baseline.module) if n not in cand.fp32_layers]
        example = to_device(self.baseline.prepare(self.cal.x[:2]), module_device(comp.module))
        swap = LayerSwap.build(self.baseline, comp, layers, example)
        for name, why in swap.not_ranked.items():
            log.info("tune: layer %s is not ranked (%s)", name, why)
        subset = self.cal.head(plan.options.ranking_samples)
        base_sub = self.base_cal.outputs["calibration"].logits[: len(subset)]
        log.info("tune: ranking %d %s layers of %s on %d calibration samples (%s: %d swapped models, no "
                 "recalibration)", len(swap.layers), swap.mode, cand.name, len(subset),
                 " + ".join(plan.options.rankings), len(swap.layers) * len(plan.options.rankings))
        sens = rank_layers(swap, comp, subset, base_sub,
                           lambda b, what: self.runner.outputs(b, "ranking", subset).logits, plan.options.rankings)
        not_ranked = dict(swap.not_ranked)
        del swap  # two model copies
        max_k = min(len(sens.layers) - 1, plan.options.max_float_layers or len(sens.layers))
        found: dict[tuple[str, int], Candidate] = {}

        def walker(ranking: str) -> Callable[[list[str]], dict[str, float]]:
            def evaluate(names: list[str]) -> dict[str, float]:
                c = self.variant(cand, names, f"{cand.name} +{len(names)} fp32 ({ranking})", "search", ranking)
                found[(ranking, len(names))] = c
                log.info("tune: walk %s k=%d (+%s): %s", ranking, len(names), names[-1], self.describe(c.calibration))
                return c.calibration
            return evaluate

        walks = {}
        for r in plan.options.rankings:
            walk = Walk(r, sens.order(r), {0: dict(cand.calibration)}, walker(r))
            walk.k = first_holding(walk.measures, budget.holds, max_k)
            walks[r] = walk
            log.info("tune: ranking %s: %s", r, f"the budget holds on calibration with {walk.k} layer(s) float"
                     if walk.k is not None else f"the budget does not hold even with {max_k} layers float")
        sizes = {r: w.steps[w.k]["size_bytes"] if w.k is not None else math.inf for r, w in walks.items()}
        better = better_ranking({r: w.k for r, w in walks.items()}, sizes)
        control_k = first_holding(walks[better].measures, accuracy_control(plan.options.control_max_drop), max_k)
        comparison = self.compare_rankings(sens, walks, better)
        log.info("tune: %s", comparison["summary"])
        log.info("tune: accuracy-only control (drop <= %g) on the '%s' ranking: %s", plan.options.control_max_drop,
                 better, f"{control_k} layer(s) float" if control_k is not None else "never holds")

        out: list[Candidate] = []
        for r, w in walks.items():  # each ranking's model; the last one walked where the budget never held
            k = w.k if w.k is not None else max(w.steps)
            if k > 0:
                out.append(found[(r, k)])
        if control_k == 0:
            out.append(dataclasses.replace(cand, role="control"))
        elif control_k is not None:
            c = found[(better, control_k)]
            out.append(dataclasses.replace(c, role="control", name=f"{cand.name} +{control_k} fp32 (accuracy "
                                                                     f"control, {better})"))
        return LayerSearch(cand.quant["name"], layers, not_ranked, sens, walks, better, control_k, comparison,
                           time.perf_counter() - t0), out

    def compare_rankings(self, sens: Sensitivity, walks: dict[str, Walk], better: str) -> dict[str, Any]:
        """Which ranking ranks better: layers each needed for the budget on calibration, and how well each one's
        scores predicted what keeping a layer float really bought in its walk (Spearman, KL)."""
        out: dict[str, Any] = {"needed_layers": {r: w.k for r, w in walks.items()}, "better": better}
        agree = {}
        for r, w in walks.items():
            walked = sorted(k for k in w.steps if k > 0)
            if walked and walked == list(range(1, walked[-1] + 1)):
                effects = greedy_effects([w.steps[k]["kl"] for k in [0] + walked])
                scores = [sens.scores(r)[n] for n in w.order[: len(effects)]]
                agree[r] = rank_agreement(scores, effects)
        out["spearman_score_vs_greedy_kl_effect"] = agree
        if len(walks) == 2:
            a, b = list(walks)
            la, lb = sens.scores(a), sens.scores(b)
            out["spearman_between_rankings"] = rank_agreement([la[n] for n in sens.layers],
                                                              [lb[n] for n in sens.layers])
        needed = ", ".join(f"{r} needs {k if k is not None else 'more than the search allows'}"
                           for r, k in out["needed_layers"].items())
        out["summary"] = (f"rankings compared on calibration: {needed} float layer(s) for the budget; "
                          f"'{better}' ranks better and drives the accuracy-only control")
        return out


def candidate_name(quant: dict) -> str:
    """A scheme candidate's label: the scheme, its recipe chain, ``@backend`` when not the default x86 (``int8``,
    ``int8+bias_correction``, ``int8+distill@onednn``).

    >>> candidate_name({"name": "int8", "recipe": ["peg", "bias_correction"]})
    'int8+peg+bias_correction'
    >>> candidate_name({"name": "int8", "backend": "onednn", "recipe": ["distill"]})
    'int8+distill@onednn'
    """
    name = "+".join([quant["name"], *(quant.get("recipe") or [])])
    return name + (f"@{quant['backend']}" if quant.get("backend") not in (None, "x86") else "")  # x86: the default


def _add(cands: list[Candidate], new: Candidate) -> Candidate:
    """Add ``new`` unless the same model is there already (then its role is merged in); returns the kept one."""
    for c in cands:
        if c.key() == new.key():
            if new.role not in c.role.split("+"):
                c.role = f"{c.role}+{new.role}"
            return c
    cands.append(new)
    return new


def tune_config(cfg: dict, out_dir: str | Path | None = None) -> TuneResult:
    """The whole tune run from a plain config dict (what ``python -m uqcompress.tune`` passes, resolved).

    Everything the user can get wrong (budget keys and values, tune options, scheme names, export) is checked
    before any model work. ``out_dir`` is where the chosen model's predictor goes when ``deploy.export`` is unset.
    """
    t0 = time.perf_counter()
    plan = plan_tune(_merge(DEFAULTS, cfg), out_dir)
    mark = _events_mark()
    budget = plan.budget
    log.info("tune: budget %s over schemes %s (selector %s)", budget.limits(), ", ".join(plan.options.schemes),
             plan.eval_cfg["selector"]["name"])
    tuner = _Tuner(plan)
    candidates: list[Candidate] = []
    for i, quant in enumerate(plan.schemes):  # every scheme, each recipe chain it takes: before any layer search
        cand = tuner.scheme_candidate(i, quant)
        if cand is not None:
            _add(candidates, cand)

    searches: list[LayerSearch] = []
    for cand in sorted(candidates, key=lambda c: c.size_bytes):
        best = choose(candidates, budget).chosen
        if budget.holds(cand.calibration) or SCHEMES.get(cand.quant["name"]).skip_layers is None:
            continue
        if best is not None and cand.size_bytes >= best.size_bytes:
            continue  # keeping layers float only grows it: it cannot beat the smallest model that meets the budget
        search, found = tuner.search(cand)
        searches.append(search)
        for c in found:
            _add(candidates, c)

    choice = choose(candidates, budget)
    for c in candidates:  # test-split results of every model the search added (never used to decide)
        if c.test is None and c is not choice.chosen:
            tuner.on_test(c)

    chosen_metrics, run = None, None
    if choice.chosen is not None:
        chosen_metrics, run = confirm_chosen(plan, choice.chosen)
        choice.chosen.test = _test_row(chosen_metrics)
        choice.chosen.test_measures = measure_split(run.baseline, run.compressed, "test",
                                                    run.compressed.metrics["coverage"])
        c = choice.chosen
        held = budget.holds(c.test_measures)
        message = (f"chosen: {c.name} ({len(c.fp32_layers)} layer(s) float), {c.size_bytes / tuner.base_size:.3f}x "
                   f"the fp32 size; test flips {chosen_metrics['compressed.flips']:.4f} (95% CI "
                   f"{chosen_metrics['compressed.flips_ci95'][0]:.4f}-{chosen_metrics['compressed.flips_ci95'][1]:.4f})"
                   f", accuracy drop {-chosen_metrics['compressed.accuracy_delta']:+.4f}; budget "
                   + ("holds on test" if held else f"misses on test: {budget.describe(c.test_measures)}"))
    else:
        c = choice.closest
        message = (f"no candidate meets the budget {budget.limits()} on calibration, even with up to "
                   f"{max((len(x.fp32_layers) for x in candidates), default=0)} layer(s) kept float; closest: "
                   f"{c.name} ({c.size_bytes / tuner.base_size:.3f}x), which misses {choice.misses}; nothing exported")
    log.info("tune: %s", message)
    baseline = {"model_size_bytes": tuner.base_size,
                "calibration_accuracy": tuner.base_cal.metrics["accuracy"],
                "n_calibration": len(tuner.cal), "n_test": len(tuner.data["test"])}
    return TuneResult(plan, baseline, candidates, searches, choice, chosen_metrics, run,
                      count_events(mark), time.perf_counter() - t0, message)


def confirm_chosen(plan: TunePlan, chosen: Candidate) -> tuple[dict[str, Any], RunResult]:
    """The chosen model as a plain pipeline run (``python -m uqcompress quant=... quant.skip=[...]``): the same
    results.json keys, its SelectivePredictor exported (``deploy.export`` semantics), plus a 95% bootstrap interval
    of its test flips (``compressed.flips_ci95``). Nothing is recomputed: states and logits come from the cache."""
    cfg = {**plan.cfg, "quant": dict(chosen.quant), "selector": dict(plan.eval_cfg["selector"]),
           "deploy": {"export": str(plan.export_path) if plan.export_path else None, "model": "compressed"}}
    log.info("tune: confirming %s on the test split%s", chosen.name,
             f" and exporting it to {plan.export_path}" if plan.export_path else "")
    started = time.time()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", category=UserWarning)
        run = run_config(cfg)
    y = run.baseline.outputs["test"].labels
    ci = M.bootstrap_ci(M.flips, run.baseline.probs["test"], run.compressed.probs["test"], y,
                        n_boot=plan.options.bootstrap, seed=int(plan.cfg["seed"]))["flips"]
    metrics = dict(run.metrics)
    metrics["compressed.flips_ci95"] = [float(ci[0]), float(ci[1])]
    metrics.update(chosen_provenance(cfg, chosen, started))
    return metrics, run


def chosen_provenance(cfg: dict, chosen: Candidate, started: float) -> dict[str, Any]:
    """The ``run.*`` keys a plain run of the chosen model writes; ``run.command`` is that plain run (the tune job's
    overrides without ``tune.*``/``budget.*``/``quant*``/``selector*``, plus the chosen scheme, layers and selector)."""
    from uqcompress import __version__
    from uqcompress.app import run_fingerprint
    from uqcompress.report.provenance import hydra_overrides, run_facts
    from uqcompress.tune.options import TUNE_KEYS

    own = hydra_overrides()
    overrides = None
    if own is not None:
        drop = (*TUNE_KEYS, "quant", "selector", "deploy")
        overrides = [o for o in own if o.lstrip("+~").split("=")[0].split(".")[0] not in drop]
        quant, selector = dict(chosen.quant), dict(cfg["selector"])
        overrides.append(f"quant={quant.pop('name')}")
        if quant.get("recipe"):
            overrides.append(f"quant.recipe=[{','.join(quant['recipe'])}]")
        if quant.get("backend") not in (None, "x86"):
            overrides.append(f"quant.backend={quant['backend']}")
        if chosen.fp32_layers:
            overrides.append(f"quant.skip=[{','.join(chosen.fp32_layers)}]")
        overrides.append(f"selector={selector.pop('name')}")
        overrides += [f"selector.{k}={v}" for k, v in selector.items() if v is not None]
    from uqcompress.run_files import export_record, snapshot

    facts = run_facts(started, time.time(), overrides)
    facts.update({"run.fingerprint": run_fingerprint(cfg), "run.uqcompress_version": __version__,
                  "run.inputs": snapshot(cfg), "run.export": export_record(cfg)})
    return facts


__all__ = ["TuneResult", "count_events", "tune_config"]
