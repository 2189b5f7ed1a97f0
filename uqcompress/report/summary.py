"""A sweep at a glance: one row per run, labelled by what the sweep changed; failed jobs listed; plots; one page.

Labels come from the swept overrides: the ``key=value`` overrides (``run.overrides`` in each ``results.json``) whose
value differs between runs, e.g. ``quant=int8, selector.target=0.8``; each swept key is a ``config.<key>`` column
holding the value that run used. Runs written before overrides were recorded are labelled by the ``config.*`` keys
that differ. The report goes to its own folder (default ``<first DIR>/report/``), never into a run folder.

Example:
    >>> swept_factors([["quant=int8", "limit=300"], ["quant=none", "limit=300"]])
    ['quant']
"""
from __future__ import annotations

import io
import json
import logging
import math
from pathlib import Path
from typing import Any, Sequence

import pandas as pd

from uqcompress.cache import atomic_write_text
from uqcompress.report import plots
from uqcompress.report.formatting import decimals_for, fmt, fmt_interval, is_missing
from uqcompress.report.intervals import HEADLINE, HIGH, LOW, intervals_from_predictions
from uqcompress.report.results import (PREDICTIONS, RESULTS, UnreadableResults, check_numbers, predictions_problem,
                                       read_results)

log = logging.getLogger(__name__)

FAILED = "failed.json"
REPORT_DIR = "report"
#: the most runs drawn as small multiples (one panel per run); more runs get the aggregate plots only
MAX_PANELS = 24
CONFIG_COLS = ["config.model", "config.quant", "config.uncertainty", "config.selector", "config.data", "config.ood",
               "config.outputs", "config.baseline", "config.compressed"]
METRIC_COLS = [
    "baseline.accuracy", "compressed.accuracy", "compressed.accuracy_delta", "compressed.flips", "compressed.c2i",
    "compressed.i2c", "compressed.all_flips", "compressed.kl", "compressed.js", "compressed.coverage",
    "compressed.selective_risk", "compressed.saved_rate", "compressed.flip_catch_rate", "baseline.ood_auroc",
    "compressed.ood_auroc", "baseline.ece", "compressed.ece", "baseline.aurc", "compressed.aurc",
    "baseline.model_size_bytes", "compressed.model_size_bytes", "baseline.latency_ms_per_sample",
    "compressed.latency_ms_per_sample", "compressed.speedup", "compressed.threshold",
    "baseline.coverage", "baseline.selective_risk", "baseline.saved_rate", "n_test", "n_ood",
    "compressed.agreement", "compressed.bits", "compressed.sparsity",
]
CI_COLS = [k + s for k in HEADLINE for s in (LOW, HIGH)]
#: the columns of summary.md and of the sweep page's table (with intervals where the run has them)
TABLE_COLS = ["baseline.accuracy", "compressed.accuracy", "compressed.flips", "compressed.c2i", "compressed.i2c",
              "compressed.kl", "compressed.coverage", "compressed.selective_risk", "compressed.saved_rate",
              "compressed.flip_catch_rate", "compressed.ood_auroc", "compressed.ece", "compressed.aurc",
              "compressed.model_size_bytes", "compressed.latency_ms_per_sample"]


def find_runs(dirs: Sequence[Path]) -> list[Path]:
    """Run dirs (holding results.json or failed.json) under each of ``dirs``, sorted."""
    found: set[Path] = set()
    for d in dirs:
        d = Path(d)
        if not d.exists():
            raise FileNotFoundError(f"no such directory: {d}")
        for name in (RESULTS, FAILED):
            found.update(p.parent for p in d.rglob(name))
    return sorted(found)


def is_run_dir(path: Path) -> bool:
    return (Path(path) / RESULTS).is_file() or (Path(path) / FAILED).is_file()


def parse_overrides(overrides: Sequence[str]) -> dict[str, str]:
    """``{"key": "value"}`` of Hydra overrides (``+key=v`` / ``++key=v`` / ``~key`` read as ``key``).

    >>> parse_overrides(["+seed=1", "quant=int8", "data.path=a=b"])
    {'seed': '1', 'quant': 'int8', 'data.path': 'a=b'}
    """
    out = {}
    for o in overrides:
        key, _, value = str(o).partition("=")
        out[key.lstrip("+~")] = value
    return out


def swept_factors(overrides: Sequence[Sequence[str] | None]) -> list[str]:
    """Keys whose override value differs between runs (or is given in some runs only), in order of appearance."""
    parsed = [parse_overrides(o or []) for o in overrides]
    keys = list(dict.fromkeys(k for p in parsed for k in p))
    return [k for k in keys if len({p.get(k) for p in parsed}) > 1]


def _config_factors(results: Sequence[dict[str, Any]]) -> list[str]:
    """Without overrides: the ``config.*`` keys that differ, leaving out options below a group whose choice differs."""
    keys = list(dict.fromkeys(k for r in results for k in r if k.startswith("config.")))
    varying = [k for k in keys if len({json.dumps(r.get(k), default=str) for r in results}) > 1]
    groups = [k for k in varying if k.count(".") == 1]
    keep = [k for k in varying if not any(k.startswith(g + ".") for g in groups)]
    return [k[len("config."):] for k in keep]


def _value(res: dict[str, Any], key: str, overrides: dict[str, str]) -> Any:
    v = res.get(f"config.{key}")
    if v is None or (isinstance(v, float) and math.isnan(v)):
        v = overrides.get(key, "(default)")
    return ", ".join(map(str, v)) if isinstance(v, list) else v


def _short_paths(values: list[Any]) -> list[Any]:
    """Path values (``outputs.compressed=/runs/int4``) shortened to the fewest trailing parts that still tell them
    apart, for labels; other values as they are (the ``config.*`` columns keep the full values).

    >>> _short_paths(["/a/x/int4", "/a/y/int4", "/a/y/fp32"]), _short_paths(["msp", "entropy"])
    (['x/int4', 'y/int4', 'y/fp32'], ['msp', 'entropy'])
    """
    if not all(isinstance(v, str) and "/" in v for v in values):
        return values
    parts = [v.rstrip("/").split("/") for v in values]
    for n in range(1, max(len(p) for p in parts) + 1):
        short = ["/".join(p[-n:]) for p in parts]
        if len(set(short)) == len(set(values)):
            return short
    return values


def _sort_key(v: Any) -> tuple:
    try:
        return (0, float(v), "")
    except (TypeError, ValueError):
        return (1, 0.0, str(v))


def _failure(run: Path) -> str:
    """The error a failed job recorded, or why its ``failed.json`` cannot be read."""
    try:
        info = json.loads((run / FAILED).read_text())
        return str(info.get("error", "?")) if isinstance(info, dict) else "failed.json is not a JSON object"
    except (OSError, ValueError) as e:
        return f"failed.json is unreadable ({type(e).__name__})"


def _job_overrides(run: Path) -> list[str] | None:
    """The overrides Hydra recorded for a job folder (``.hydra/overrides.yaml``), when there is one."""
    path = run / ".hydra" / "overrides.yaml"
    if not path.is_file():
        return None
    from omegaconf import OmegaConf

    try:
        return [str(o) for o in OmegaConf.load(path)]
    except Exception:  # unreadable: the job is still listed, by its folder
        return None


def summarize(runs: Sequence[Path], n_boot: int = 1000) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(summary of completed runs, table of failed runs).

    The summary has ``label``, ``run``, ``config.<factor>`` per swept factor (listed in ``summary.attrs["factors"]``),
    the config groups, the metrics and their ``_ci_low`` / ``_ci_high`` intervals: those stored in ``results.json``,
    else (older runs) recomputed from ``predictions.csv`` with ``n_boot`` resamples (0: none).

    A run whose ``results.json`` is unreadable (truncated, not JSON) is listed as failed, with one warning naming the
    file; a ``predictions.csv`` that does not match its ``results.json`` is not read (one warning): no plots from it and no
    intervals recomputed from it.
    """
    results, done, failed_runs, unreadable = [], [], [], {}
    for r in runs:
        if (r / RESULTS).is_file():
            try:
                res = read_results(r)
                check_numbers(r, res, METRIC_COLS + CI_COLS)
            except UnreadableResults as e:
                log.warning("uqcompress.report: %s; listed as failed (rerun the sweep to redo it)", e)
                unreadable[r] = str(e)
                failed_runs.append(r)
                continue
            bad = predictions_problem(r, res)
            if bad:
                log.warning("uqcompress.report: %s; its run is reported without its predictions (intervals only as "
                            "stored in results.json, no plots)", bad)
            res["_predictions_ok"] = not bad
            results.append(res)
            done.append(r)
        elif (r / FAILED).is_file():
            failed_runs.append(r)
    overrides = [res.get("run.overrides") if isinstance(res.get("run.overrides"), list) else None
                 for res in results]
    overrides += [_job_overrides(r) for r in failed_runs]
    if results and all(o is not None for o in overrides[: len(results)]):  # failed jobs add theirs when they have
        factors = swept_factors([o for o in overrides if o is not None])
    else:
        factors = _config_factors(results)
    rows = []
    for r, res, ov in zip(done, results, overrides):
        row: dict[str, Any] = {"run": str(r)}
        parsed = parse_overrides(ov or [])
        row.update({f"config.{k}": _value(res, k, parsed) for k in factors})
        row.update({c: res.get(c) for c in CONFIG_COLS if c not in row})
        row.update({c: res.get(c, math.nan) for c in METRIC_COLS + CI_COLS if c not in row})  # absent: NaN
        row["predictions"] = str(r / PREDICTIONS) if res["_predictions_ok"] and (r / PREDICTIONS).is_file() else None
        if n_boot and all(is_missing(row[c]) for c in CI_COLS) and row["predictions"]:
            row.update({k: v for k, v in intervals_from_predictions(pd.read_csv(r / PREDICTIONS), n_boot=n_boot)
                        .items() if k in CI_COLS})
        row["run.overrides"] = " ".join(ov) if ov else None
        row["dataset"] = dataset_of(res)
        rows.append(row)
    summary = pd.DataFrame(rows)
    if len(summary):
        if factors:
            order = sorted(range(len(summary)), key=lambda i: [_sort_key(summary[f"config.{f}"].iloc[i])
                                                               for f in factors])
            summary = summary.iloc[order].reset_index(drop=True)
        shown = {f: _short_paths(summary[f"config.{f}"].tolist()) for f in factors}
        labels = [", ".join(f"{f}={shown[f][i]}" for f in factors) or Path(row["run"]).name
                  for i, (_, row) in enumerate(summary.iterrows())]
        summary.insert(0, "label", _unique(labels))
    summary.attrs["factors"] = factors
    failed = []
    for r, ov in zip(failed_runs, overrides[len(done):]):
        parsed = parse_overrides(ov or [])
        label = ", ".join(f"{f}={parsed[f]}" for f in factors if f in parsed) or r.name
        failed.append({"label": label, "run": str(r), "error": unreadable.get(r) or _failure(r)})
    return summary, pd.DataFrame(failed, columns=["label", "run", "error"])


def dataset_of(res: dict[str, Any]) -> str:
    """The data set a run measured: ``config.data`` (with its ``path`` when it has one), else its stored outputs'.

    >>> dataset_of({"config.data": "npz", "config.data.path": "/d/a.npz"}), dataset_of({"config.outputs": "lm_eval"})
    ('npz (/d/a.npz)', 'lm_eval')
    """
    name = res.get("config.data")
    if not isinstance(name, str) or name in ("none", ""):
        name = res.get("config.outputs") if isinstance(res.get("config.outputs"), str) else "?"
        return str(name)
    path = res.get("config.data.path")
    return f"{name} ({path})" if isinstance(path, str) and path else name


#: the sweep page's default ranking: fewest flips first
DEFAULT_SORT = "compressed.flips"
#: metrics where higher is better (``--sort`` ranks them descending); every other metric ranks ascending
HIGHER_IS_BETTER = ("accuracy", "accuracy_delta", "agreement", "coverage", "saved_rate", "error_catch_rate",
                    "flip_catch_rate", "ood_auroc", "speedup")


def sort_ascending(metric: str) -> bool:
    """Whether ``metric`` ranks ascending (lower is better).

    >>> sort_ascending("compressed.flips"), sort_ascending("compressed.accuracy")
    (True, False)
    """
    return metric.rsplit(".", 1)[-1] not in HIGHER_IS_BETTER


def pareto_front(size: Sequence[float], flips: Sequence[float]) -> list[bool]:
    """Which points no other point beats on size and flips at once (both lower is better; smaller or equal on both
    and strictly smaller on one; :func:`uqcompress.tune.search.pareto_front`). A missing value is never on it.

    >>> pareto_front([1, 2, 3, 2], [3, 1, 0, 2])
    [True, True, True, False]
    """
    from uqcompress.tune.search import pareto_front as front

    on = set(front([(float(a), float(b)) for a, b in zip(size, flips)]))
    return [i in on for i in range(len(size))]


def rank(summary: pd.DataFrame, sort: str = DEFAULT_SORT) -> pd.DataFrame:
    """The summary grouped by data set and sorted by ``sort`` within each (see :func:`sort_ascending`; missing values
    last), with ``rank`` (1 = best within its data set), ``best``, ``pareto`` (size vs flips, within its data set) and
    ``size_ratio`` (compressed / baseline bytes). ``sort`` is a metric column, e.g. ``compressed.accuracy``."""
    if not len(summary):
        return summary
    if sort not in summary.columns or sort in ("label", "run", "dataset", "predictions"):
        numeric = [c for c in METRIC_COLS if c in summary.columns]
        raise ValueError(f"--sort {sort}: not a metric of these runs; choose one of {', '.join(numeric)}")
    attrs = dict(summary.attrs)
    out = summary.copy()
    out["size_ratio"] = (pd.to_numeric(out["compressed.model_size_bytes"], errors="coerce")
                         / pd.to_numeric(out["baseline.model_size_bytes"], errors="coerce"))
    asc = sort_ascending(sort)
    datasets = list(dict.fromkeys(out["dataset"]))
    parts = []
    for d in datasets:
        g = out[out["dataset"] == d].copy()
        g["_key"] = pd.to_numeric(g[sort], errors="coerce")
        g = g.sort_values("_key", ascending=asc, na_position="last", kind="stable").drop(columns="_key")
        g["rank"] = range(1, len(g) + 1)
        g["best"] = [i == 0 and not is_missing(v) for i, v in enumerate(pd.to_numeric(g[sort], errors="coerce"))]
        g["pareto"] = pareto_front(g["size_ratio"].tolist(), pd.to_numeric(g["compressed.flips"], errors="coerce")
                                   .tolist())
        parts.append(g)
    out = pd.concat(parts, ignore_index=True)
    out.attrs.update(attrs, sort=sort, ascending=asc, datasets=datasets)
    return out


def datasets_line(summary: pd.DataFrame) -> str | None:
    """One line when the runs measured more than one data set (their numbers compare only within one), else None."""
    if "dataset" not in summary or summary["dataset"].nunique() < 2:
        return None
    counts = summary["dataset"].value_counts(sort=False)
    return (f"these runs are on {len(counts)} data sets ({', '.join(f'{d}: {n} runs' for d, n in counts.items())}): "
            "reported per data set, since flips and accuracy compare only within one")


def _unique(labels: list[str]) -> list[str]:
    """Labels made unique by a ``#2``, ``#3`` suffix on repeats (the same overrides twice)."""
    seen: dict[str, int] = {}
    out = []
    for label in labels:
        seen[label] = seen.get(label, 0) + 1
        out.append(label if seen[label] == 1 else f"{label} #{seen[label]}")
    return out


def column_decimals(summary: pd.DataFrame, cols: Sequence[str]) -> dict[str, int]:
    """Per column, the decimals that tell its runs apart (at least 4)."""
    return {c: decimals_for(summary[c].tolist()) for c in cols if c in summary}


def short(col: str) -> str:
    """A column name for people: ``compressed.flips`` -> ``flips``, ``baseline.accuracy`` -> ``base accuracy``."""
    return col.replace("compressed.", "").replace("baseline.", "base ")


def correlation_line(summary: pd.DataFrame) -> str:
    rho, n, k = plots.flips_vs_kl_correlation(summary)
    if rho is None:
        return (f"Spearman ρ(flips, KL): not computed, {k} distinct (KL, flips) point{'s' if k != 1 else ''} "
                f"from {n} runs (needs at least 3).")
    return f"Spearman ρ(flips, KL) = {rho:.3f} over n = {n} runs ({k} distinct points)."


def to_markdown(summary: pd.DataFrame, failed: pd.DataFrame) -> str:
    cols = [c for c in TABLE_COLS if c in summary.columns]
    dec = column_decimals(summary, cols)
    lines = ["# uqcompress sweep summary", ""]
    factors = summary.attrs.get("factors", [])
    if factors:
        lines += [f"Swept: {', '.join(factors)}.", ""]
    mixed = datasets_line(summary)
    if mixed:
        lines += [mixed[0].upper() + mixed[1:] + ".", ""]
    sort = summary.attrs.get("sort")
    if sort and len(summary):
        lines += [f"Ranked by {short(sort)} ({'ascending' if summary.attrs.get('ascending') else 'descending'}); "
                  "★ best, ◆ Pareto set of size vs flips (no run both smaller and with fewer flips).", ""]
    groups = ([(d, summary[summary["dataset"] == d]) for d in dict.fromkeys(summary["dataset"])]
              if mixed else [(None, summary)])
    for dataset, part in groups:
        if not len(part):
            continue
        if dataset is not None:
            lines += [f"## Data set: {dataset}", ""]
        lines += ["| run | " + " | ".join(short(c) for c in cols) + " |", "|---|" + "---|" * len(cols)]
        for _, r in part.iterrows():
            cells = []
            for c in cols:
                ci = fmt_interval(r.get(c + LOW), r.get(c + HIGH), dec[c])
                cells.append(fmt(r[c], dec[c]) + (f" {ci}" if ci else ""))
            marks = ("★" if r.get("best") is True else "") + ("◆" if r.get("pareto") is True else "")
            lines.append(f"| {r['label']}{' ' + marks if marks else ''} | " + " | ".join(cells) + " |")
        lines.append("")
    if len(summary):
        lines += [correlation_line(summary), "",
                  "Brackets: 95% percentile bootstrap intervals over the test samples (models and threshold fixed)."]
    if len(failed):
        lines += ["", "## Failed jobs", ""] + [f"- `{r.run}` ({r.label}): {r.error}" for r in failed.itertuples()]
    return "\n".join(lines) + "\n"


def report_folder(dirs: Sequence[Path], out: Path | None, runs: Sequence[Path]) -> Path:
    """Where the sweep report goes: ``out`` or ``<first DIR>/report``; refused inside (or as) a run folder."""
    folder = Path(out) if out is not None else Path(dirs[0]) / REPORT_DIR
    resolved = folder.resolve()
    for r in runs:
        if resolved == r.resolve() or r.resolve() in resolved.parents:
            raise ValueError(f"the report folder {folder} is inside the run folder {r}; the report never writes "
                             "into a run's folder: pass --out with a folder outside it")
    return folder


def write_report(dirs: Sequence[Path], out: Path | None = None, n_boot: int = 1000,
                 sort: str = DEFAULT_SORT) -> list[Path]:
    """Write summary.csv, summary.md, the sweep plots and report.html into the report folder; returns the paths.
    Runs are ranked by ``sort`` within each data set (:func:`rank`); runs of several data sets are said so (one
    warning) and grouped."""
    from uqcompress.report.html import sweep_page

    runs = find_runs(dirs)
    if not runs:
        raise FileNotFoundError(f"no results.json under {', '.join(map(str, dirs))}")
    out = report_folder(dirs, out, runs)
    summary, failed = summarize(runs, n_boot=n_boot)
    summary = rank(summary, sort)
    mixed = datasets_line(summary)
    if mixed:
        log.warning("uqcompress.report: %s", mixed)
    buf = io.StringIO()
    summary.to_csv(buf, index=False)
    atomic_write_text(out / "summary.csv", buf.getvalue())
    atomic_write_text(out / "summary.md", to_markdown(summary, failed))
    paths = [out / "summary.csv", out / "summary.md"]
    figures = sweep_figures(summary, out)
    paths += figures
    paths.append(sweep_page(out, summary, failed, figures))
    return paths


def sweep_figures(summary: pd.DataFrame, out: Path) -> list[Path]:
    """The sweep's PNGs: one per swept factor, small multiples of the per-run plots, flips vs KL, Δ accuracy."""
    if not len(summary):
        return []
    factors = summary.attrs.get("factors", [])
    paths = [plots.factor_effect(summary, f, factors, out / f"factor_{_slug(f)}.png") for f in factors]
    with_preds = [row for row in summary.itertuples() if isinstance(row.predictions, str)]
    if len(with_preds) > MAX_PANELS:  # a panel per run stops being readable (and matplotlib's shared axes go O(n^2))
        log.info("uqcompress.report: %d runs: per-run panels (risk-coverage, reliability, cascade, confidence) are "
                 "drawn up to %d runs; each run folder holds its own plots", len(with_preds), MAX_PANELS)
        with_preds = []
    preds = {row.label: pd.read_csv(row.predictions) for row in with_preds}
    if preds:
        paths.append(plots.risk_coverage(preds, out / "risk_coverage.png",
                                         title="Risk–coverage per run (baseline dashed)"))
        paths.append(plots.reliability(preds, out / "reliability.png", title="Reliability per run"))
        paths.append(plots.cascade_curves(preds, out / "cascade.png"))
        paths.append(plots.flip_catch_curves(preds, out / "flip_catch.png"))
        if any((p.split == "ood").any() for p in preds.values()):
            thresholds = dict(zip(summary["label"], summary["compressed.threshold"]))
            paths.append(plots.confidence_hist(preds, out / "confidence_id_vs_ood.png", threshold=thresholds,
                                               title="Confidence of the compressed model, ID vs OOD, per run"))
    paths.append(plots.flips_vs_kl(summary, out / "flips_vs_kl.png"))
    paths.append(plots.accuracy_delta_vs_flips(summary, out / "accuracy_delta_vs_flips.png"))
    return paths


def _slug(text: str) -> str:
    """A file-name-safe form of a factor name.

    >>> _slug("selector.target")
    'selector.target'
    >>> _slug("data/path x")
    'data_path_x'
    """
    return "".join(ch if ch.isalnum() or ch in "._-" else "_" for ch in text)


__all__ = ["CONFIG_COLS", "DEFAULT_SORT", "METRIC_COLS", "column_decimals", "correlation_line", "dataset_of",
           "datasets_line", "find_runs", "is_run_dir", "pareto_front", "parse_overrides", "rank", "report_folder",
           "summarize", "swept_factors", "to_markdown", "write_report"]
