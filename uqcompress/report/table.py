"""A readable terminal table of one run: baseline vs compressed, and what changed."""
from __future__ import annotations

import math
from typing import Any

from rich.console import Console
from rich.table import Table

ROWS = [
    ("accuracy", "accuracy"), ("ece", "ECE"), ("nll", "NLL"), ("brier", "Brier"),
    ("coverage", "coverage (test)"), ("selective_risk", "selective risk"), ("saved_rate", "saved-from-misclass."),
    ("error_catch_rate", "error catch rate"), ("aurc", "AURC"), ("eaurc", "E-AURC"),
    ("ood_auroc", "OOD AUROC"), ("ood_fpr95", "OOD FPR@95"),
    ("model_size_bytes", "size (bytes)"), ("latency_ms_per_sample", "latency (ms/sample)"),
]
CHANGE_ROWS = [("flips", "flips (C→I + I→C)"), ("c2i", "C→I"), ("i2c", "I→C"), ("all_flips", "all flips"),
               ("kl", "KL(base‖comp)"), ("kl_sem", "KL standard error"), ("kl_median", "KL median"),
               ("kl_p99", "KL 99th percentile"), ("kl_max", "KL max"), ("js", "JS divergence"),
               ("flip_catch_rate", "flips abstained on")]
#: columns of the whole-run table of a stored-outputs run (``all.*`` and ``task.<name>.*`` keys)
SCOPE_COLS = [("n", "n"), ("baseline.accuracy", "acc base"), ("compressed.accuracy", "acc comp"),
              ("baseline.accuracy_norm", "norm base"), ("compressed.accuracy_norm", "norm comp"),
              ("compressed.flips", "flips"), ("compressed.kl", "KL")]


def _fmt(v: Any) -> str:
    if v is None or (isinstance(v, float) and math.isnan(v)):
        return "—"
    if isinstance(v, int) or (isinstance(v, float) and v.is_integer() and abs(v) >= 1000):
        return f"{int(v):,}"
    if isinstance(v, float):
        return f"{v:.4f}"
    return str(v)


def render(metrics: dict[str, Any], title: str = "uqcompress", console: Console | None = None) -> None:
    """Print the verdict line (:func:`uqcompress.report.verdict.verdict`), then the table (``metrics`` are the flat
    results keys)."""
    from rich.text import Text

    from uqcompress.report.verdict import verdict

    console = console or Console()
    line = verdict(metrics)
    console.print(Text(line, style="bold green" if line.startswith("CAN ") else "bold"))
    t = Table(title=title, show_lines=False)
    t.add_column("metric")
    t.add_column("baseline", justify="right")
    t.add_column("compressed", justify="right")
    t.add_column("Δ", justify="right")
    for key, label in ROWS:
        b, c = metrics.get(f"baseline.{key}"), metrics.get(f"compressed.{key}")
        if b is None and c is None:
            continue
        d = (c - b) if isinstance(b, (int, float)) and isinstance(c, (int, float)) else None
        t.add_row(label, _fmt(b), _fmt(c), _fmt(d) if key != "model_size_bytes" else
                  (f"×{c / b:.2f}" if b and c else "—"))
    for key, label in CHANGE_ROWS:
        if f"compressed.{key}" in metrics:
            t.add_row(label, "", _fmt(metrics[f"compressed.{key}"]), "")
    console.print(t)
    if "all.n" in metrics:
        render_scopes(metrics, console)


def render_scopes(metrics: dict[str, Any], console: Console) -> None:
    """Whole-run table of a stored-outputs run: every question (calibration and test), per task and pooled."""
    tasks = sorted({k[len("task."):-len(".n")] for k in metrics if k.startswith("task.") and k.endswith(".n")})
    cols = [(k, label) for k, label in SCOPE_COLS if f"all.{k}" in metrics]
    t = Table(title="every question (calibration + test); acc: lm-eval's acc, norm: acc_norm"
              if "all.baseline.accuracy_norm" in metrics else "every question (calibration + test)")
    t.add_column("task")
    for _, label in cols:
        t.add_column(label, justify="right")
    for name, scope in [(n, f"task.{n}") for n in tasks] + [("all", "all")]:
        t.add_row(name, *[_fmt(metrics.get(f"{scope}.{k}")) for k, _ in cols])
    console.print(t)
