"""One table for a sweep: a row per run (config + key metrics + bootstrap CIs), failed jobs listed, plots.

Example:
    >>> from uqcompress.report.summary import find_runs
    >>> find_runs([])
    []
"""
from __future__ import annotations

import io
import json
import math
from pathlib import Path
from typing import Sequence

import numpy as np
import pandas as pd

from uqcompress import metrics as M
from uqcompress.cache import atomic_write_text
from uqcompress.report import plots
from uqcompress.report.results import PREDICTIONS, RESULTS, read_results

CONFIG_COLS = ["config.model", "config.quant", "config.uncertainty", "config.selector", "config.data", "config.ood",
               "config.outputs", "config.baseline", "config.compressed"]
METRIC_COLS = [
    "baseline.accuracy", "compressed.accuracy", "compressed.accuracy_delta", "compressed.flips", "compressed.c2i",
    "compressed.i2c", "compressed.all_flips", "compressed.kl", "compressed.js", "compressed.coverage",
    "compressed.selective_risk", "compressed.saved_rate", "compressed.flip_catch_rate", "baseline.ood_auroc",
    "compressed.ood_auroc", "baseline.ece", "compressed.ece", "baseline.aurc", "compressed.aurc",
    "baseline.model_size_bytes", "compressed.model_size_bytes", "baseline.latency_ms_per_sample",
    "compressed.latency_ms_per_sample",
]


def find_runs(dirs: Sequence[Path]) -> list[Path]:
    """Run dirs (holding results.json or failed.json) under each of ``dirs``, sorted."""
    found: set[Path] = set()
    for d in dirs:
        d = Path(d)
        if not d.exists():
            raise FileNotFoundError(f"no such directory: {d}")
        for name in (RESULTS, "failed.json"):
            found.update(p.parent for p in d.rglob(name))
    return sorted(found)


def _label(row: pd.Series, varying: list[str]) -> str:
    parts = [str(row[c]) for c in varying] or [str(row.get("config.quant", "run"))]
    return "/".join(parts)


def _bootstrap(pred: pd.DataFrame, n_boot: int, seed: int = 0) -> dict[str, tuple[float, float]]:
    """Percentile bootstrap CIs (95%) for compressed accuracy, flips, saved_rate and OOD AUROC."""
    test = pred[pred.split == "test"]
    y = test["label"].to_numpy()
    b = test["baseline_pred"].to_numpy()
    c = test["compressed_pred"].to_numpy()
    acc = test["compressed_accepted"].to_numpy().astype(bool)
    out = {
        "compressed.accuracy": M.bootstrap_ci(lambda yy, cc: float(np.mean(yy == cc)), y, c, n_boot=n_boot,
                                              seed=seed),
        "compressed.flips": M.bootstrap_ci(lambda yy, bb, cc: float(np.mean((bb == yy) != (cc == yy))), y, b, c,
                                           n_boot=n_boot, seed=seed),
    }
    wrong = c != y
    if (~acc).any():
        out["compressed.saved_rate"] = M.bootstrap_ci(
            lambda a, w: float(np.sum(~a & w) / max(np.sum(~a), 1)), acc, wrong, n_boot=n_boot, seed=seed)
    ood = pred[pred.split == "ood"]
    if len(ood):
        # resample ID and OOD separately (they are independent samples)
        ci = test["compressed_confidence"].to_numpy()
        co = ood["compressed_confidence"].to_numpy()
        rng = np.random.default_rng(seed)
        vals = [M.ood(ci[rng.integers(0, len(ci), len(ci))], co[rng.integers(0, len(co), len(co))])["auroc"]
                for _ in range(min(n_boot, 200))]
        out["compressed.ood_auroc"] = (float(np.percentile(vals, 2.5)), float(np.percentile(vals, 97.5)))
    return out


def summarize(runs: Sequence[Path], n_boot: int = 1000) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(summary of completed runs, table of failed runs)."""
    rows, failed = [], []
    for r in runs:
        if (r / RESULTS).is_file():
            res = read_results(r)
            row = {"run": str(r), **{c: res.get(c) for c in CONFIG_COLS + METRIC_COLS}}
            if n_boot and (r / PREDICTIONS).is_file():
                for k, (lo, hi) in _bootstrap(pd.read_csv(r / PREDICTIONS), n_boot).items():
                    row[f"{k}.ci_low"], row[f"{k}.ci_high"] = lo, hi
            rows.append(row)
        elif (r / "failed.json").is_file():
            info = json.loads((r / "failed.json").read_text())
            failed.append({"run": str(r), "error": info.get("error", "?")})
    summary = pd.DataFrame(rows)
    if len(summary):
        varying = [c for c in CONFIG_COLS if summary[c].nunique(dropna=False) > 1]
        summary.insert(0, "label", [_label(row, varying) for _, row in summary.iterrows()])
    return summary, pd.DataFrame(failed, columns=["run", "error"])


def _fmt(v) -> str:
    if v is None or (isinstance(v, float) and math.isnan(v)):
        return "—"
    if isinstance(v, float):
        return f"{v:,.0f}" if abs(v) >= 1000 else f"{v:.4f}"
    return str(v)


def to_markdown(summary: pd.DataFrame, failed: pd.DataFrame) -> str:
    cols = ["label", "baseline.accuracy", "compressed.accuracy", "compressed.accuracy_delta", "compressed.flips",
            "compressed.c2i", "compressed.i2c", "compressed.kl", "compressed.coverage", "compressed.saved_rate",
            "compressed.flip_catch_rate", "compressed.ood_auroc", "compressed.ece", "compressed.aurc",
            "compressed.model_size_bytes", "compressed.latency_ms_per_sample"]
    cols = [c for c in cols if c in summary.columns]
    lines = ["# uqcompress sweep summary", ""]
    if len(summary):
        lines += ["| " + " | ".join(c.replace("compressed.", "") for c in cols) + " |",
                  "|" + "---|" * len(cols)]
        for _, r in summary.iterrows():
            cells = []
            for c in cols:
                cell = _fmt(r[c])
                lo, hi = r.get(f"{c}.ci_low"), r.get(f"{c}.ci_high")
                if lo is not None and not (isinstance(lo, float) and math.isnan(lo)):
                    cell += f" [{lo:.3f}, {hi:.3f}]"
                cells.append(cell)
            lines.append("| " + " | ".join(cells) + " |")
        if len(summary) >= 3:
            rho = M.spearman(summary["compressed.kl"].to_numpy(float), summary["compressed.flips"].to_numpy(float))
            lines += ["", f"Spearman ρ(flips, KL) across {len(summary)} runs: {rho:.3f}"]
        lines += ["", "Brackets: 95% percentile bootstrap intervals over test samples."]
    if len(failed):
        lines += ["", "## Failed jobs", ""] + [f"- `{r.run}`: {r.error}" for r in failed.itertuples()]
    return "\n".join(lines) + "\n"


def write_report(dirs: Sequence[Path], out: Path | None = None, n_boot: int = 1000) -> list[Path]:
    """Write summary.csv, summary.md and the sweep plots; returns the written paths."""
    runs = find_runs(dirs)
    if not runs:
        raise FileNotFoundError(f"no results.json under {', '.join(map(str, dirs))}")
    out = Path(out or dirs[0])
    summary, failed = summarize(runs, n_boot=n_boot)
    buf = io.StringIO()
    summary.to_csv(buf, index=False)
    atomic_write_text(out / "summary.csv", buf.getvalue())
    atomic_write_text(out / "summary.md", to_markdown(summary, failed))
    paths = [out / "summary.csv", out / "summary.md"]
    if len(summary):
        preds = {row.label: pd.read_csv(Path(row.run) / PREDICTIONS) for row in summary.itertuples()
                 if (Path(row.run) / PREDICTIONS).is_file()}
        if preds:
            paths.append(plots.risk_coverage(preds, out / "risk_coverage.png",
                                             title="Risk–coverage per run (baseline dashed)"))
            first_label, first = next(iter(preds.items()))
            worst = summary.sort_values("compressed.flips").iloc[-1]["label"]
            paths.append(plots.reliability(preds[worst], out / "reliability.png",
                                           title=f"Reliability: baseline vs {worst}"))
            if (first.split == "ood").any():
                paths.append(plots.confidence_hist(preds[worst], out / "confidence_id_vs_ood.png",
                                                   title=f"Confidence ID vs OOD ({worst})"))
        paths.append(plots.flips_vs_kl(summary, out / "flips_vs_kl.png"))
        paths.append(plots.accuracy_delta_vs_flips(summary, out / "accuracy_delta_vs_flips.png"))
    return paths
