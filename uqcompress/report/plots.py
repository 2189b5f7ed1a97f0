"""Plots people look at: risk–coverage, reliability, ID-vs-OOD confidence, flips vs KL, accuracy delta vs flips,
cascade accuracy / agreement vs deferral rate.

Every function takes plain tables (a run's ``predictions.csv`` as a DataFrame, or a sweep's summary) and writes one
PNG with a title, axis labels with units and a legend.

Example:
    >>> import pandas as pd
    >>> from uqcompress.report.plots import reliability_points
    >>> reliability_points(pd.Series([0.95, 0.95, 0.55]), pd.Series([True, False, True]), n_bins=2)[1].tolist()
    [1.0, 0.5]
"""
from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any, Sequence

import matplotlib

matplotlib.use("Agg")  # files only, no display needed
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

from uqcompress import metrics as M  # noqa: E402

BASE_STYLE = dict(color="black", linestyle="--", linewidth=1.5)


def _save(fig: plt.Figure, path: Path) -> Path:
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp.png")
    fig.savefig(tmp, dpi=120)
    plt.close(fig)
    tmp.replace(path)
    return path


def _correct(pred: pd.DataFrame, who: str) -> np.ndarray:
    return (pred[f"{who}_pred"] == pred["label"]).to_numpy()


def risk_coverage(curves: dict[str, pd.DataFrame], path: Path, title: str = "Risk–coverage") -> Path:
    """Selective risk vs coverage on the test split: baseline dashed, one solid line per compressed run."""
    fig, ax = plt.subplots(figsize=(6, 4.5))
    base_drawn = False
    for label, pred in curves.items():
        test = pred[pred.split == "test"]
        for who in ("baseline", "compressed"):
            if who == "baseline" and base_drawn:
                continue
            cov, risk = M.risk_coverage_curve(test[f"{who}_confidence"].to_numpy(), _correct(test, who))
            aurc = M.aurc(test[f"{who}_confidence"].to_numpy(), _correct(test, who))["aurc"]
            if who == "baseline":
                ax.plot(cov, risk, label=f"baseline (AURC {aurc:.4f})", **BASE_STYLE)
                base_drawn = True
            else:
                ax.plot(cov, risk, label=f"{label} (AURC {aurc:.4f})", linewidth=1.5)
    ax.set_xlabel("coverage (fraction of test inputs answered)")
    ax.set_ylabel("selective risk (error rate among answered)")
    ax.set_xlim(0, 1)
    ax.set_ylim(bottom=0)
    ax.set_title(title)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    return _save(fig, path)


def reliability_points(conf: pd.Series, correct: pd.Series, n_bins: int = 15) -> tuple[np.ndarray, np.ndarray,
                                                                                         np.ndarray]:
    """(mean confidence, accuracy, count) per non-empty equal-width bin; confidence 1.0 falls in the last bin."""
    c = np.asarray(conf, dtype=np.float64)
    ok = np.asarray(correct, dtype=np.float64)
    idx = np.minimum((c * n_bins).astype(int), n_bins - 1)
    count = np.bincount(idx, minlength=n_bins)
    keep = count > 0
    mean_c = np.bincount(idx, c, n_bins)[keep] / count[keep]
    acc = np.bincount(idx, ok, n_bins)[keep] / count[keep]
    return mean_c, acc, count[keep]


def reliability(pred: pd.DataFrame, path: Path, title: str = "Reliability", n_bins: int = 15) -> Path:
    """Accuracy vs confidence (max softmax) per bin on the test split, baseline vs compressed, with ECE."""
    test = pred[pred.split == "test"]
    fig, ax = plt.subplots(figsize=(5.5, 5))
    ax.plot([0, 1], [0, 1], color="grey", linewidth=1, label="perfect calibration")
    for who, style in (("baseline", dict(marker="o", **BASE_STYLE)), ("compressed", dict(marker="s", linewidth=1.5))):
        mc, acc, count = reliability_points(test[f"{who}_pmax"], _correct(test, who), n_bins)
        ece = float(np.sum(count * np.abs(acc - mc)) / count.sum())  # same binning as metrics.calibration
        ax.plot(mc, acc, label=f"{who} (ECE {ece:.4f})", **style)
    ax.set_xlabel("confidence (max softmax probability)")
    ax.set_ylabel("accuracy in bin")
    ax.set_xlim(0, 1)
    ax.set_ylim(0, 1.02)
    ax.set_title(title)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    return _save(fig, path)


def confidence_hist(pred: pd.DataFrame, path: Path, who: str = "compressed", title: str | None = None,
                    threshold: float | None = None) -> Path:
    """Histogram of confidence on ID test vs OOD inputs (with the selector threshold when given)."""
    fig, ax = plt.subplots(figsize=(6, 4))
    test = pred[pred.split == "test"][f"{who}_confidence"]
    bins = np.histogram_bin_edges(pred[f"{who}_confidence"], bins=40)
    ax.hist(test, bins=bins, alpha=0.6, density=True, label=f"in-distribution test (n={len(test)})")
    ood = pred[pred.split == "ood"][f"{who}_confidence"]
    if len(ood):
        auroc = M.ood(test.to_numpy(), ood.to_numpy())["auroc"]
        ax.hist(ood, bins=bins, alpha=0.6, density=True, label=f"OOD (n={len(ood)}, AUROC {auroc:.3f})")
    if threshold is not None and np.isfinite(threshold):
        ax.axvline(threshold, color="black", linestyle=":", label=f"threshold {threshold:.3g}")
    ax.set_xlabel(f"{who} confidence score (higher = more confident)")
    ax.set_ylabel("density")
    ax.set_title(title or f"Confidence, ID vs OOD ({who})")
    ax.legend(fontsize=8)
    return _save(fig, path)


def flips_vs_kl(summary: pd.DataFrame, path: Path, title: str = "Flips vs KL across runs") -> Path:
    """Scatter of flips against KL(base‖comp), one point per compressed run, with Spearman ρ."""
    fig, ax = plt.subplots(figsize=(6, 4.5))
    x, y = summary["compressed.kl"].to_numpy(float), summary["compressed.flips"].to_numpy(float)
    ax.scatter(x, y)
    for _, r in summary.iterrows():
        ax.annotate(str(r["label"]), (r["compressed.kl"], r["compressed.flips"]), fontsize=7,
                    xytext=(3, 3), textcoords="offset points")
    rho = M.spearman(x, y) if len(summary) >= 3 else float("nan")
    ax.set_xlabel("KL(baseline ‖ compressed) on test (nats, mean per sample)")
    ax.set_ylabel("flips (fraction of test samples C→I or I→C)")
    ax.set_title(f"{title} (Spearman ρ = {rho:.3f}, n = {len(summary)})")
    ax.grid(alpha=0.3)
    return _save(fig, path)


def accuracy_delta_vs_flips(summary: pd.DataFrame, path: Path) -> Path:
    """|Δ accuracy| next to flips per run: accuracy barely moves while answers flip."""
    s = summary.sort_values("compressed.flips")
    fig, ax = plt.subplots(figsize=(max(6, 0.6 * len(s) + 2), 4.5))
    idx = np.arange(len(s))
    ax.bar(idx - 0.2, 100 * s["compressed.accuracy_delta"].abs(), width=0.4, label="|Δ accuracy| (points)")
    ax.bar(idx + 0.2, 100 * s["compressed.flips"], width=0.4, label="flips (% of test samples)")
    ax.set_xticks(idx)
    ax.set_xticklabels(s["label"], rotation=30, ha="right", fontsize=8)
    ax.set_ylabel("percent of test samples")
    ax.set_title("Accuracy is not all you need: |Δ accuracy| vs flips")
    ax.legend(fontsize=8)
    ax.grid(alpha=0.3, axis="y")
    return _save(fig, path)


def cascade_curves(curves: dict[str, pd.DataFrame], path: Path,
                   title: str = "Cascade: defer the least confident inputs to the baseline") -> Path:
    """Cascade accuracy and agreement with the baseline against the deferral rate, one line per run (scorer).

    ``curves`` maps a label to a run's ``predictions.csv`` (test rows are used); the least confident inputs by the
    compressed model's confidence are deferred first (:func:`uqcompress.metrics.cascade_curve`). A dot marks the
    deferral rate the run's own selector chose.
    """
    fig, (ax_acc, ax_agr) = plt.subplots(1, 2, figsize=(11, 4.5), sharex=True)
    base_drawn = False
    for label, pred in curves.items():
        test = pred[pred.split == "test"]
        c = M.cascade_curve(test["baseline_pred"].to_numpy(), test["compressed_pred"].to_numpy(),
                            test["label"].to_numpy(), test["compressed_confidence"].to_numpy())
        (line,) = ax_acc.plot(c["deferral_rate"], c["accuracy"], linewidth=1.5, label=label)
        ax_agr.plot(c["deferral_rate"], c["agreement"], linewidth=1.5, color=line.get_color(), label=label)
        if "compressed_accepted" in test:
            accepted = test["compressed_accepted"].to_numpy(bool)
            answer = np.where(accepted, test["compressed_pred"], test["baseline_pred"])
            d = 1.0 - accepted.mean()
            ax_acc.plot([d], [np.mean(answer == test["label"])], "o", color=line.get_color())
            ax_agr.plot([d], [np.mean(answer == test["baseline_pred"])], "o", color=line.get_color())
        if not base_drawn:
            ax_acc.axhline(np.mean(test["baseline_pred"] == test["label"]), label="baseline alone", **BASE_STYLE)
            base_drawn = True
    ax_acc.set_ylabel("cascade accuracy on test")
    ax_agr.set_ylabel("agreement with the baseline (share of same answers)")
    for ax in (ax_acc, ax_agr):
        ax.set_xlabel("deferral rate (share of test inputs sent to the baseline)")
        ax.set_xlim(0, 1)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    fig.suptitle(f"{title} (dots: each run's selector)")
    return _save(fig, path)


def plot_run(run: Any, out_dir: str | Path | None = None) -> list[Path]:
    """The single-run plots (risk–coverage, reliability, ID/OOD confidence) from a RunResult into ``out_dir``."""
    out = Path(out_dir) if out_dir else Path(tempfile.mkdtemp(prefix="uqcompress_plots_"))
    pred = run.predictions
    label = str(run.metrics.get("config.quant", "compressed"))
    paths = [risk_coverage({label: pred}, out / "risk_coverage.png"),
             reliability(pred, out / "reliability.png")]
    if (pred.split == "ood").any():
        paths.append(confidence_hist(pred, out / "confidence_id_vs_ood.png",
                                     threshold=run.metrics.get("compressed.threshold")))
    return paths
