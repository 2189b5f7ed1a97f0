"""Plots people look at: risk–coverage, reliability, ID-vs-OOD confidence, flips vs KL, accuracy delta vs flips,
the effect of each swept factor, and a cascade's accuracy / agreement vs deferral rate.

Every function takes plain tables (a run's ``predictions.csv`` as a DataFrame, or a sweep's summary) and writes one
PNG with a title, axis labels with units and a legend. Several runs are drawn as small multiples (one panel per run,
same axes), so no run hides another; the baseline is always black and dashed, named once in the figure legend.
Numbers in legends carry enough digits to tell the runs apart (:func:`uqcompress.report.formatting.decimals_for`).

Example:
    >>> import pandas as pd
    >>> from uqcompress.report.plots import reliability_points
    >>> reliability_points(pd.Series([0.95, 0.95, 0.45]), pd.Series([True, False, True]), n_bins=2)[1].tolist()
    [1.0, 0.5]
"""
from __future__ import annotations

import tempfile
import textwrap
from pathlib import Path
from typing import Any, Callable, Sequence

import matplotlib

matplotlib.use("Agg")  # files only, no display needed
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

from matplotlib.lines import Line2D  # noqa: E402
from matplotlib.patches import Patch  # noqa: E402

from uqcompress import metrics as M  # noqa: E402
from uqcompress.report.formatting import decimals_for, fmt, is_missing  # noqa: E402

BASE_STYLE = dict(color="black", linestyle="--", linewidth=1.5)
COMP_STYLE = dict(color="tab:blue", linewidth=1.5)
BASE_HANDLE = Line2D([], [], label="baseline (dashed)", **BASE_STYLE)
COMP_HANDLE = Line2D([], [], label="compressed", **COMP_STYLE)
PANEL_IN = (3.4, 2.9)  # inches per small-multiple panel


def _save(fig: plt.Figure, path: Path, layout: bool = True) -> Path:
    if layout:
        fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp.png")
    fig.savefig(tmp, dpi=120)
    plt.close(fig)
    tmp.replace(path)
    return path


def _correct(pred: pd.DataFrame, who: str) -> np.ndarray:
    return (pred[f"{who}_pred"] == pred["label"]).to_numpy()


def _test(pred: pd.DataFrame) -> pd.DataFrame:
    return pred[pred.split == "test"]


def _note(ax: plt.Axes, lines: Sequence[str]) -> None:
    """Small text box in the lower-right corner of a panel (numbers that belong to that panel)."""
    ax.text(0.98, 0.03, "\n".join(lines), transform=ax.transAxes, ha="right", va="bottom", fontsize=7,
            family="monospace", bbox=dict(boxstyle="round,pad=0.3", facecolor="white", alpha=0.85, linewidth=0.5))


def small_multiples(preds: dict[str, pd.DataFrame], draw: Callable[[plt.Axes, pd.DataFrame, str], None],
                    path: Path, title: str, handles: Sequence[Any], xlabel: str, ylabel: str,
                    sharey: bool = True) -> Path:
    """One panel per run (``draw(ax, predictions, label)``), shared axes, one legend for the whole figure."""
    n = len(preds)
    ncols = min(n, 4)
    nrows = -(-n // ncols)
    panel = (6.0, 4.2) if n == 1 else PANEL_IN
    fig, axes = plt.subplots(nrows, ncols, figsize=(panel[0] * ncols, panel[1] * nrows + 0.8), sharex=True,
                             sharey=sharey, squeeze=False, layout="constrained")
    for ax, (label, pred) in zip(axes.flat, preds.items()):
        draw(ax, pred, label)
        if label:
            ax.set_title("\n".join(textwrap.wrap(label, 38)), fontsize=8)
        ax.grid(alpha=0.3)
    for ax in list(axes.flat)[n:]:
        ax.set_visible(False)
    for ax in axes[-1]:
        ax.set_xlabel(xlabel, fontsize=8)
    for ax in axes[:, 0]:
        ax.set_ylabel(ylabel, fontsize=8)
    fig.suptitle(title, fontsize=11)
    fig.legend(handles=list(handles), loc="outside lower center", fontsize=8, ncol=len(handles), frameon=False)
    return _save(fig, path, layout=False)


def _aurc(pred: pd.DataFrame, who: str) -> float:
    test = _test(pred)
    return M.aurc(test[f"{who}_confidence"].to_numpy(), _correct(test, who))["aurc"]


def risk_coverage(curves: dict[str, pd.DataFrame], path: Path, title: str = "Risk–coverage") -> Path:
    """Selective risk vs coverage on the test split, one panel per run: baseline dashed, compressed solid, AURC of
    each with enough digits to tell the runs apart."""
    aurcs = {label: (_aurc(p, "baseline"), _aurc(p, "compressed")) for label, p in curves.items()}
    d = decimals_for([v for pair in aurcs.values() for v in pair])

    def draw(ax: plt.Axes, pred: pd.DataFrame, label: str) -> None:
        test = _test(pred)
        for who, style in (("baseline", BASE_STYLE), ("compressed", COMP_STYLE)):
            cov, risk = M.risk_coverage_curve(test[f"{who}_confidence"].to_numpy(), _correct(test, who))
            ax.plot(cov, risk, **style)
            point = operating_point(pred, who)
            if point is not None:  # where the selector's threshold put this model on the test split
                ax.plot(*point, marker="*", markersize=11, linestyle="none", color=style["color"],
                        markerfacecolor=style["color"] if who == "compressed" else "white", zorder=5)
        b, c = aurcs[label]
        _note(ax, [f"AURC base {fmt(b, d)}", f"     comp {fmt(c, d)}"])
        ax.set_xlim(0, 1)
        ax.set_ylim(bottom=0)

    star = Line2D([], [], marker="*", markersize=10, linestyle="none", color="tab:blue",
                  label="operating point (chosen threshold)")
    return small_multiples(curves, draw, path, title, [BASE_HANDLE, COMP_HANDLE, star],
                           "coverage (share of test inputs answered)", "selective risk (error rate answered)")


def operating_point(pred: pd.DataFrame, who: str) -> tuple[float, float] | None:
    """(coverage, selective risk) of ``who`` at its selector's threshold on the test split (from the ``*_accepted``
    column); None when it answers nothing (risk undefined) or the column is missing."""
    test = _test(pred)
    col = f"{who}_accepted"
    if col not in test or not len(test):
        return None
    accepted = test[col].astype(bool).to_numpy()
    if not accepted.any():
        return None
    return float(accepted.mean()), float(1 - _correct(test, who)[accepted].mean())


#: a reliability bin with fewer samples is drawn hollow (its accuracy is too noisy to read)
MIN_BIN_COUNT = 10


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


def _ece(pred: pd.DataFrame, who: str, n_bins: int) -> float:
    test = _test(pred)
    mc, acc, count = reliability_points(test[f"{who}_pmax"], _correct(test, who), n_bins)
    return float(np.sum(count * np.abs(acc - mc)) / count.sum())  # same binning as metrics.calibration


def reliability(preds: pd.DataFrame | dict[str, pd.DataFrame], path: Path, title: str = "Reliability",
                n_bins: int = 15) -> Path:
    """Accuracy vs confidence (max softmax) per bin on the test split, baseline vs compressed, with ECE; one panel
    per run when ``preds`` maps labels to several runs' predictions. Each bin is a point labelled with its sample
    count and a stem to the diagonal; bins are never joined, and bins under :data:`MIN_BIN_COUNT` samples are hollow."""
    preds = preds if isinstance(preds, dict) else {"": preds}
    eces = {label: (_ece(p, "baseline", n_bins), _ece(p, "compressed", n_bins)) for label, p in preds.items()}
    d = decimals_for([v for pair in eces.values() for v in pair])

    def draw(ax: plt.Axes, pred: pd.DataFrame, label: str) -> None:
        test = _test(pred)
        ax.plot([0, 1], [0, 1], color="grey", linewidth=1)
        for who, marker, color, dy in (("baseline", "o", BASE_STYLE["color"], -11),
                                        ("compressed", "s", COMP_STYLE["color"], 5)):
            mc, acc, count = reliability_points(test[f"{who}_pmax"], _correct(test, who), n_bins)
            few = count < MIN_BIN_COUNT  # drawn hollow: an accuracy over a handful of samples is noise
            ax.vlines(mc, np.minimum(acc, mc), np.maximum(acc, mc), color=color, linewidth=0.8, alpha=0.5)
            for mask, face in ((~few, color), (few, "white")):  # points, never a line joining the bins
                ax.plot(mc[mask], acc[mask], marker=marker, markersize=4, linestyle="none", color=color,
                        markerfacecolor=face)
            for x, y, n in zip(mc, acc, count):
                ax.annotate(str(int(n)), (x, y), textcoords="offset points", xytext=(2, dy), fontsize=6,
                            color=color)
        b, c = eces[label]
        _note(ax, [f"ECE base {fmt(b, d)}", f"    comp {fmt(c, d)}", "numbers: samples in bin"])
        ax.set_xlim(0, 1)
        ax.set_ylim(0, 1.06)

    diagonal = Line2D([], [], color="grey", linewidth=1, label="perfect calibration")
    base = Line2D([], [], marker="o", linestyle="none", color=BASE_STYLE["color"], label="baseline")
    comp = Line2D([], [], marker="s", linestyle="none", color=COMP_STYLE["color"], label="compressed")
    hollow = Line2D([], [], marker="o", linestyle="none", color="grey", markerfacecolor="white",
                    label=f"hollow: < {MIN_BIN_COUNT} samples")
    return small_multiples(preds, draw, path, title, [base, comp, hollow, diagonal],
                           "confidence (max softmax probability)", "accuracy in bin")


def confidence_hist(preds: pd.DataFrame | dict[str, pd.DataFrame], path: Path, who: str = "compressed",
                    title: str | None = None, threshold: float | dict[str, float] | None = None) -> Path:
    """Histogram of ``who``'s confidence on ID test vs OOD inputs, with the selector's threshold when given (a number,
    or one per run); one panel per run when ``preds`` maps labels to several runs' predictions."""
    preds = preds if isinstance(preds, dict) else {"": preds}
    thresholds = threshold if isinstance(threshold, dict) else {label: threshold for label in preds}
    aurocs = {}
    for label, pred in preds.items():
        ood = pred[pred.split == "ood"][f"{who}_confidence"]
        aurocs[label] = M.ood(_test(pred)[f"{who}_confidence"].to_numpy(), ood.to_numpy())["auroc"] \
            if len(ood) else float("nan")
    d = decimals_for(aurocs.values(), least=3)

    def draw(ax: plt.Axes, pred: pd.DataFrame, label: str) -> None:
        bins = np.histogram_bin_edges(pred[f"{who}_confidence"], bins=40)
        test = _test(pred)[f"{who}_confidence"]
        ood = pred[pred.split == "ood"][f"{who}_confidence"]
        ax.hist(test, bins=bins, alpha=0.6, density=True, color="tab:blue")
        if len(ood):
            ax.hist(ood, bins=bins, alpha=0.6, density=True, color="tab:orange")
        t = thresholds.get(label)
        if t is not None and not is_missing(t) and np.isfinite(t):
            ax.axvline(t, color="black", linestyle=":")
        _note(ax, [f"n ID {len(test)}, OOD {len(ood)}"] + ([f"AUROC {fmt(aurocs[label], d)}"] if len(ood) else []))

    handles = [Patch(color="tab:blue", alpha=0.6, label="in-distribution test"),
               Patch(color="tab:orange", alpha=0.6, label="OOD"),
               Line2D([], [], color="black", linestyle=":", label="selector threshold")]
    return small_multiples(preds, draw, path, title or f"Confidence, ID vs OOD ({who} model)", handles,
                           f"{who} confidence score (higher = more confident)", "density", sharey=False)


def distinct_points(x: Sequence[float], y: Sequence[float]) -> int:
    """How many distinct finite (x, y) pairs there are (a correlation needs at least 3).

    >>> distinct_points([0.1, 0.1, 0.2], [1, 1, 2])
    2
    """
    pts = {(float(a), float(b)) for a, b in zip(x, y) if np.isfinite(a) and np.isfinite(b)}
    return len(pts)


def flips_vs_kl_correlation(summary: pd.DataFrame) -> tuple[float | None, int, int]:
    """(Spearman ρ of flips vs KL or None when there are fewer than 3 distinct points, runs, distinct points)."""
    x = summary["compressed.kl"].to_numpy(float)
    y = summary["compressed.flips"].to_numpy(float)
    ok = np.isfinite(x) & np.isfinite(y)
    k = distinct_points(x[ok], y[ok])
    return (M.spearman(x[ok], y[ok]) if k >= 3 else None), int(ok.sum()), k


#: the most runs a sweep plot names one by one (legend entries, bar labels); more runs are drawn as a cloud
MAX_NAMED_RUNS = 40


def flips_vs_kl(summary: pd.DataFrame, path: Path, title: str = "Flips vs KL across runs") -> Path:
    """Scatter of flips against KL(base‖comp), one marker per run (named in the legend, so labels never overlap);
    Spearman ρ only with at least 3 distinct points, with the number of runs and of distinct points."""
    fig, ax = plt.subplots(figsize=(8.5, 4.8))
    markers = "osD^v<>PX*"
    named = len(summary) <= MAX_NAMED_RUNS
    if not named:  # thousands of runs: one cloud (a legend entry per run would be unreadable and slow)
        ax.scatter(summary["compressed.kl"], summary["compressed.flips"], s=8, alpha=0.5, color="C0", zorder=3)
    for i, (label, kl, flips) in enumerate(zip(summary["label"], summary["compressed.kl"],
                                               summary["compressed.flips"]) if named else ()):
        # hollow markers of different shapes: runs at the same point stay visible on top of each other
        ax.scatter([kl], [flips], marker=markers[i % len(markers)], s=70 - 4 * (i % 8), facecolors="none",
                   edgecolors=f"C{i % 10}", linewidths=1.5, label=str(label), zorder=3)
    rho, n, k = flips_vs_kl_correlation(summary)
    stat = (f"Spearman ρ = {rho:.3f} (n = {n} runs, {k} distinct points)" if rho is not None else
            f"no correlation shown: {k} distinct point{'s' if k != 1 else ''} from {n} runs (needs ≥ 3)")
    ax.set_xlabel("KL(baseline ‖ compressed) on test (nats, mean per sample)")
    ax.set_ylabel("flips (share of test samples C→I or I→C)")
    ax.set_title(f"{title}\n{stat}", fontsize=10)
    ax.grid(alpha=0.3)
    if named:
        ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1.0), frameon=False)
    return _save(fig, path)


#: the sweep metrics drawn against each swept factor (with a baseline counterpart drawn dashed where it exists)
FACTOR_METRICS = [("compressed.accuracy", "accuracy"), ("compressed.flips", "flips (C→I + I→C)"),
                  ("compressed.coverage", "coverage (test)"), ("compressed.selective_risk", "selective risk"),
                  ("compressed.saved_rate", "saved-from-misclassification"), ("compressed.ood_auroc", "OOD AUROC")]


def _as_numbers(values: Sequence[Any]) -> np.ndarray | None:
    try:
        out = np.asarray([float(v) for v in values])
    except (TypeError, ValueError):
        return None
    return out if np.isfinite(out).all() else None


def factor_effect(summary: pd.DataFrame, factor: str, others: Sequence[str], path: Path) -> Path:
    """Headline metrics (with their 95% intervals) against one swept factor; one series per setting of the other
    swept factors; the baseline's value (accuracy, OOD AUROC, coverage, ...) dashed in the series' colour."""
    col = f"config.{factor}"
    metrics = [(k, name) for k, name in FACTOR_METRICS if k in summary and summary[k].notna().any()]
    values = list(dict.fromkeys(summary[col].tolist()))
    nums = _as_numbers(values)
    if nums is not None:
        order = [v for _, v in sorted(zip(nums, values))]
        pos = {v: float(x) for v, x in zip(values, nums)}
        span = (max(nums) - min(nums)) or 1.0
        gaps = np.diff(np.unique(nums))
        step = float(gaps.min()) if len(gaps) else span
    else:
        order = values
        pos = {v: float(i) for i, v in enumerate(values)}
        step = 1.0
    others = [o for o in others if o != factor]
    groups = summary.groupby([f"config.{o}" for o in others], sort=False, dropna=False) if others \
        else [((), summary)]
    groups = list(groups)
    ncols = min(3, len(metrics))
    nrows = -(-len(metrics) // ncols)
    fig, axes = plt.subplots(nrows, ncols, figsize=(4.2 * ncols, 3.3 * nrows + 1.0), squeeze=False,
                             layout="constrained")
    handles = []
    for gi, (key, g) in enumerate(groups):
        key = key if isinstance(key, tuple) else (key,)
        name = ", ".join(f"{o}={v}" for o, v in zip(others, key)) or "compressed"
        color = f"C{gi % 10}"
        dodge = (gi - (len(groups) - 1) / 2) * 0.06 * step
        g = g.assign(_x=[pos[v] + dodge for v in g[col]]).sort_values("_x")
        for ax, (k, _) in zip(axes.flat, metrics):
            y = g[k].to_numpy(float)
            lo, hi = g.get(f"{k}_ci_low"), g.get(f"{k}_ci_high")
            yerr = None
            if lo is not None and hi is not None and np.isfinite(lo.to_numpy(float)).any():
                yerr = np.abs(np.vstack([y - lo.to_numpy(float), hi.to_numpy(float) - y]))
                yerr = np.nan_to_num(yerr)
            ax.errorbar(g["_x"], y, yerr=yerr, color=color, marker="o", markersize=4, capsize=3, linewidth=1.2)
            base = k.replace("compressed.", "baseline.")
            if base != k and base in g and g[base].notna().any():
                ax.plot(g["_x"], g[base].to_numpy(float), color=color, marker="x", markersize=4, **{
                    k2: v for k2, v in BASE_STYLE.items() if k2 != "color"})
        handles.append(Line2D([], [], color=color, marker="o", label=name))
    for ax, (k, name) in zip(axes.flat, metrics):
        ax.set_title(name, fontsize=9)
        ax.set_xticks([pos[v] for v in order])
        ax.set_xticklabels([str(v) for v in order], rotation=20 if nums is None else 0, fontsize=8,  # as given
                           ha="right" if nums is None else "center")
        ax.set_xlabel(factor, fontsize=8)
        ax.grid(alpha=0.3)
    for ax in list(axes.flat)[len(metrics):]:
        ax.set_visible(False)
    handles.append(Line2D([], [], marker="x", label="baseline (dashed)", **BASE_STYLE))
    fig.suptitle(f"Effect of {factor} (bars: 95% bootstrap intervals over test samples)", fontsize=11)
    fig.legend(handles=handles, loc="outside lower center", fontsize=8, ncol=min(4, len(handles)), frameon=False)
    return _save(fig, path, layout=False)


def accuracy_delta_vs_flips(summary: pd.DataFrame, path: Path) -> Path:
    """|Δ accuracy| next to flips per run: accuracy barely moves while answers flip."""
    s = summary.sort_values("compressed.flips")
    if len(s) > MAX_NAMED_RUNS:  # a bar pair per run stops being readable: one dot per run, and the diagonal
        fig, ax = plt.subplots(figsize=(6.5, 4.8))
        flips, delta = 100 * s["compressed.flips"], 100 * s["compressed.accuracy_delta"].abs()
        ax.scatter(flips, delta, s=8, alpha=0.5)
        top = float(np.nanmax([flips.max(), delta.max(), 1e-9]))
        ax.plot([0, top], [0, top], color="0.5", linewidth=1, linestyle=":", label="|Δ accuracy| = flips")
        ax.set_xlabel("flips (% of test samples)")
        ax.set_ylabel("|Δ accuracy| (points)")
        ax.set_title(f"Accuracy is not all you need: |Δ accuracy| vs flips ({len(s)} runs)")
        ax.legend(fontsize=8)
        ax.grid(alpha=0.3)
        return _save(fig, path)
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


def flip_catch_curves(curves: dict[str, pd.DataFrame], path: Path,
                      title: str = "Flip-catch: answers that differ from the baseline's, abstained on") -> Path:
    """Flip-catch against coverage, one line per run (scorer) on one axis: of the test inputs whose compressed answer
    differs from the baseline's, the share among the least confident ``1 - coverage`` (read off
    :func:`uqcompress.metrics.cascade_curve`: catch = (agreement - agreement at full coverage) / disagreement).
    A dot marks the coverage the run's own selector chose."""
    fig, ax = plt.subplots(figsize=(6.5, 4.5))
    for label, pred in curves.items():
        test = pred[pred.split == "test"]
        differ = test["baseline_pred"].to_numpy() != test["compressed_pred"].to_numpy()
        if not differ.any():
            continue
        c = M.cascade_curve(test["baseline_pred"].to_numpy(), test["compressed_pred"].to_numpy(),
                            test["label"].to_numpy(), test["compressed_confidence"].to_numpy())
        (line,) = ax.plot(1 - c["deferral_rate"], (c["agreement"] - c["agreement"][0]) / differ.mean(),
                          linewidth=1.5, label=label)
        if "compressed_accepted" in test:
            accepted = test["compressed_accepted"].to_numpy(bool)
            ax.plot([accepted.mean()], [np.mean(~accepted[differ])], "o", color=line.get_color())
    ax.plot([0, 1], [1, 0], color="0.6", linestyle=":", linewidth=1, label="random abstention")
    ax.set_xlabel("coverage (share of test inputs answered)")
    ax.set_ylabel("flip-catch (share of changed answers abstained on)")
    ax.set_xlim(0, 1)
    ax.set_ylim(0, 1.02)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    ax.set_title(f"{title} (dots: each run's selector)", fontsize=9)
    return _save(fig, path)


def plot_run(run: Any, out_dir: str | Path | None = None) -> list[Path]:
    """The single-run plots (risk–coverage, reliability, ID/OOD confidence) from a RunResult into ``out_dir``."""
    out = Path(out_dir) if out_dir else Path(tempfile.mkdtemp(prefix="uqcompress_plots_"))
    pred = run.predictions
    label = f"{run.metrics.get('config.model', 'model')} × {run.metrics.get('config.quant', 'compressed')}"
    paths = [risk_coverage({label: pred}, out / "risk_coverage.png"),
             reliability(pred, out / "reliability.png"),
             flip_catch_curves({f"{label} ({run.metrics.get('config.uncertainty', 'scorer')})": pred},
                               out / "flip_catch.png")]
    if (pred.split == "ood").any():
        paths.append(confidence_hist(pred, out / "confidence_id_vs_ood.png",
                                     threshold=run.metrics.get("compressed.threshold")))
    return paths
