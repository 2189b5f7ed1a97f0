"""What a tune run writes: ``tune.json``, the candidate table (terminal + ``tune.csv``), the size-vs-flips plot, and
the chosen model's ``results.json`` / ``predictions.csv`` (the same files as a plain run of it).

Example:
    >>> from uqcompress.tune.report import clean
    >>> clean({"a": float("nan"), "b": [1.0, float("inf")]})
    {'a': None, 'b': [1.0, 'inf']}
"""
from __future__ import annotations

import json
import math
from dataclasses import asdict
from pathlib import Path
from typing import Any

import pandas as pd

from uqcompress.cache import atomic_write_text
from uqcompress.tune.run import TuneResult
from uqcompress.tune.search import Candidate, pareto_front

TUNE_JSON = "tune.json"
TUNE_CSV = "tune.csv"
PARETO_PNG = "tune_pareto.png"


def clean(v: Any) -> Any:
    """JSON-safe copy: NaN -> null, inf -> "inf", tuples -> lists, numpy / torch scalars -> Python numbers."""
    if hasattr(v, "item") and getattr(v, "ndim", 1) == 0:
        v = v.item()
    if isinstance(v, float) and not math.isfinite(v):
        return None if math.isnan(v) else ("inf" if v > 0 else "-inf")
    if isinstance(v, dict):
        return {str(k): clean(x) for k, x in v.items()}
    if isinstance(v, (list, tuple)):
        return [clean(x) for x in v]
    return v


def _candidate(res: TuneResult, c: Candidate) -> dict[str, Any]:
    b = res.budget
    base = res.baseline["model_size_bytes"]
    return {
        "name": c.name, "role": c.role, "scheme": c.quant.get("name"), "quant": c.quant, "ranking": c.ranking,
        "fp32_layers": c.fp32_layers, "n_fp32_layers": len(c.fp32_layers),
        "size_bytes": c.size_bytes, "size_ratio": c.size_bytes / base,
        "calibration": c.calibration, "meets_budget_calibration": b.holds(c.calibration),
        "misses_calibration": b.describe(c.calibration) or None,
        "test": c.test, "test_measures": c.test_measures,
        "meets_budget_test": b.holds(c.test_measures) if c.test_measures else None,
        "chosen": c is res.choice.chosen,
    }


def tune_json(res: TuneResult) -> dict[str, Any]:
    """Everything the run measured and decided, JSON-safe."""
    cfg = res.plan.cfg
    searches = []
    for s in res.searches:
        searches.append({
            "scheme": s.scheme, "layers": s.layers, "not_ranked": s.not_ranked, "seconds": s.seconds,
            "ranking": {**s.sensitivity.as_dict(),
                        "orders": {r: s.sensitivity.order(r) for r in s.walks}},
            "walks": {r: {"k": w.k, "order": w.order,
                          "steps": [{"k": k, "layer": (w.order[k - 1] if k else None), **w.steps[k]}
                                    for k in sorted(w.steps)]}
                      for r, w in s.walks.items()},
            "better_ranking": s.better, "control_k": s.control_k, "comparison": s.comparison,
        })
    chosen, closest = res.choice.chosen, res.choice.closest
    return clean({
        "budget": res.budget.as_dict(),
        "tune": asdict(res.plan.options),
        "selector": res.plan.eval_cfg["selector"],
        "config": {"model": cfg["model"].get("name"), "data": cfg["data"].get("name"),
                   "ood": (cfg.get("ood") or {}).get("name", "none"), "uncertainty": cfg["uncertainty"].get("name"),
                   "seed": cfg["seed"], "limit": cfg.get("limit"), "device": cfg.get("device")},
        "baseline": res.baseline,
        "candidates": [_candidate(res, c) for c in res.candidates],
        "searches": searches,
        "chosen_name": chosen.name if chosen else None,
        "chosen": res.chosen_metrics,
        "closest": ({"name": closest.name, "misses": res.choice.misses, **_candidate(res, closest)}
                    if closest is not None else None),
        "message": res.message,
        "evaluations": res.evaluations,
        "wall_s": res.seconds,
    })


def table(res: TuneResult) -> pd.DataFrame:
    """One row per candidate: the test-split numbers a user compares (size, speedup, accuracy, flips, KL, coverage
    at the selector's target), the calibration flips the search decided on, and the choice."""
    rows = []
    base = res.baseline["model_size_bytes"]
    for c in sorted(res.candidates, key=lambda c: c.size_bytes):
        t = c.test or {}
        rows.append({
            "chosen": "*" if c is res.choice.chosen else "",
            "model": c.name, "role": c.role, "scheme": c.quant.get("name"),
            "fp32_layers": len(c.fp32_layers), "size_MB": c.size_bytes / 1e6, "size_x": c.size_bytes / base,
            "speedup": t.get("compressed.speedup"), "accuracy": t.get("compressed.accuracy"),
            "flips": t.get("compressed.flips"), "kl": t.get("compressed.kl"),
            "coverage": t.get("compressed.coverage"), "selective_risk": t.get("compressed.selective_risk"),
            "cal_flips": c.calibration.get("flips"), "recipe_s": t.get("compressed.recipe_seconds"),
            "budget_cal": "holds" if res.budget.holds(c.calibration) else res.budget.describe(c.calibration),
        })
    return pd.DataFrame(rows)


def render(res: TuneResult) -> None:
    """Print the candidate table."""
    from rich.console import Console
    from rich.table import Table

    df = table(res)
    sel = res.plan.eval_cfg["selector"]
    target = sel.get("target")
    t = Table(title=f"uqcompress.tune: budget {res.budget.limits()} (test split; coverage at selector={sel['name']}"
                    f"{f' target {target}' if target is not None else ''})")
    heads = ["", "model", "float layers", "size", "speedup", "accuracy", "flips", "KL", "coverage", "cal. flips",
             "recipe s", "budget (calibration)"]
    for h in heads:
        t.add_column(h, justify="left" if h in ("model", "budget (calibration)") else "right")

    def f(v: Any, fmt: str) -> str:
        return "—" if v is None or (isinstance(v, float) and math.isnan(v)) else format(v, fmt)

    for r in df.itertuples():
        t.add_row(r.chosen, r.model, str(r.fp32_layers), f"{r.size_MB:.2f} MB ×{r.size_x:.2f}", f(r.speedup, ".2f"),
                  f(r.accuracy, ".4f"), f(r.flips, ".4f"), f(r.kl, ".4f"), f(r.coverage, ".3f"),
                  f(r.cal_flips, ".4f"), f(r.recipe_s, ".1f"), r.budget_cal)
    console = Console()
    if not console.is_terminal:  # a log file or a pipe: room for every column
        console = Console(width=170)
    console.print(t)


#: the budget term a tune plot draws, its test-split value of a candidate, and its axis label
PLOT_TERMS = {
    "flips": (lambda t: t.get("compressed.flips"), "flips (share of answers that changed correctness)"),
    "kl": (lambda t: t.get("compressed.kl"), "KL(baseline ‖ compressed), nats"),
    "accuracy_drop": (lambda t: None if t.get("baseline.accuracy") is None or t.get("compressed.accuracy") is None
                      else t["baseline.accuracy"] - t["compressed.accuracy"], "accuracy drop (baseline − compressed)"),
}


def plot_term(budget: Any) -> str:
    """The term the size plot draws: the budget's (flips, then KL, then accuracy drop); flips for a coverage-only
    budget."""
    return next((k for k in PLOT_TERMS if getattr(budget, k, None) is not None), "flips")


def pareto_plot(res: TuneResult, path: Path) -> Path:
    """Size (× fp32) vs the budget's term (:func:`plot_term`: flips, KL or accuracy drop): each ranking's walk on
    calibration (swapped models), every candidate on the test split, the Pareto front of the candidates, the budget,
    the chosen model starred."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from uqcompress.report.plots import _save

    term = plot_term(res.budget)
    value, ylabel = PLOT_TERMS[term]
    base = res.baseline["model_size_bytes"]
    fig, ax = plt.subplots(figsize=(7, 4.8))
    for s in res.searches:
        for r, w in s.walks.items():
            ks = sorted(w.steps)
            ax.plot([w.steps[k]["size_bytes"] / base for k in ks], [w.steps[k].get(term, math.nan) for k in ks], ".-",
                    linewidth=0.8, markersize=3, alpha=0.6, label=f"walk '{r}' on calibration ({s.scheme})")
    tested = [c for c in res.candidates if c.test and value(c.test) is not None]
    pts = [(c.size_bytes / base, float(value(c.test))) for c in tested]
    markers = {"scheme": "o", "search": "s", "control": "^"}
    for c, (x, y) in zip(tested, pts):
        role = c.role.split("+")[-1]
        ax.plot(x, y, markers.get(role, "o"), markersize=7, label=f"{c.name} (test)")
    front = pareto_front(pts)
    if len(front) > 1:
        ax.plot([pts[i][0] for i in front], [pts[i][1] for i in front], "k:", linewidth=1, label="Pareto front (test)")
    limit = getattr(res.budget, term, None)
    if limit is not None:
        ax.axhline(limit, color="red", linestyle="--", linewidth=1, label=f"budget {term} {limit}")
    if res.choice.chosen is not None and res.choice.chosen.test and value(res.choice.chosen.test) is not None:
        c = res.choice.chosen
        ax.plot(c.size_bytes / base, value(c.test), "*", color="gold", markeredgecolor="black",
                markersize=16, label=f"chosen: {c.name}")
    ax.set_xlabel("model size (× the fp32 baseline)")
    ax.set_ylabel(ylabel)
    ax.set_title(f"{res.plan.cfg['model'].get('name')} on {res.plan.cfg['data'].get('name')}: size vs "
                 f"{term.replace('_', ' ')}")
    ax.legend(fontsize=7, loc="upper right")
    ax.grid(alpha=0.3)
    return _save(fig, path)


def write_outputs(res: TuneResult, out_dir: str | Path, plots: bool = True, fingerprint: str | None = None,
                  inputs: list | None = None) -> Path:
    """Write ``tune.json`` (last: its presence marks a finished run; ``fingerprint`` of the config and ``inputs``,
    :func:`uqcompress.run_files.snapshot` of its files as ``run.inputs``, bind a resume to them), ``tune.csv``, the
    plot and, when a model was chosen, its ``results.json`` + ``predictions.csv``; returns the ``tune.json`` path."""
    from uqcompress.report.results import write_results

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    atomic_write_text(out / TUNE_CSV, table(res).to_csv(index=False))
    if plots:
        pareto_plot(res, out / PARETO_PNG)
    if res.chosen_metrics is not None and res.run is not None:
        write_results(out, res.chosen_metrics, res.run.predictions)
    path = out / TUNE_JSON
    atomic_write_text(path, json.dumps({**tune_json(res), "fingerprint": fingerprint, "run.inputs": inputs},
                                         indent=2, sort_keys=False))
    return path


__all__ = ["PARETO_PNG", "TUNE_CSV", "TUNE_JSON", "clean", "pareto_plot", "render", "table", "tune_json",
           "write_outputs"]
