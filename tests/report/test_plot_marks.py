"""What the run plots show: reliability bins as separate points with their sample counts (never joined), the
risk-coverage operating point at the chosen threshold, and the tune plot on the budget's own term."""
import numpy as np
import pytest
from matplotlib.lines import Line2D
from test_summary import predictions

from uqcompress.report import plots
from uqcompress.tune.budget import Budget
from uqcompress.tune.report import plot_term


@pytest.fixture
def figures(monkeypatch):
    drawn = []
    save = plots._save

    def keep(fig, path, layout=True):
        drawn.append(fig)
        return save(fig, path, layout)

    monkeypatch.setattr(plots, "_save", keep)
    return drawn


def test_operating_point_is_the_accepted_share_and_its_error_rate():
    pred = predictions(3)
    test = pred[pred.split == "test"]
    acc = test.compressed_accepted.to_numpy()
    wrong = (test.compressed_pred != test.label).to_numpy()
    assert plots.operating_point(pred, "compressed") == pytest.approx((acc.mean(), wrong[acc].mean()))
    none = pred.assign(compressed_accepted=False)
    assert plots.operating_point(none, "compressed") is None  # nothing answered: no risk to mark


def test_risk_coverage_marks_each_models_operating_point(tmp_path, figures):
    pred = predictions(4)
    plots.risk_coverage({"run": pred}, tmp_path / "rc.png")
    ax = figures[-1].axes[0]
    stars = [(ln.get_xdata()[0], ln.get_ydata()[0]) for ln in ax.lines if ln.get_marker() == "*"]
    want = sorted(plots.operating_point(pred, w) for w in ("baseline", "compressed"))
    assert len(stars) == 2 and np.allclose(sorted(stars), want)


def test_reliability_bins_are_points_with_counts_never_joined(tmp_path, figures):
    pred = predictions(5)
    test = pred[pred.split == "test"]
    plots.reliability(pred, tmp_path / "rel.png", n_bins=15)
    ax = figures[-1].axes[0]
    joined = [ln for ln in ax.lines if ln.get_linestyle() not in ("None", "none", "") and len(ln.get_xdata()) > 2]
    assert joined == []  # only the 2-point diagonal is a line
    counts = sorted(int(t.get_text()) for t in ax.texts if t.get_text().isdigit())
    want = []
    for who in ("baseline", "compressed"):  # reference: numpy's histogram of the max probability, 15 equal bins
        h, _ = np.histogram(np.minimum(test[f"{who}_pmax"], 1 - 1e-12), bins=15, range=(0, 1))
        want += [int(n) for n in h if n]
    assert counts == sorted(want) and sum(counts) == 2 * len(test)
    hollow = sum(int((ln.get_markerfacecolor() == "white") * len(ln.get_xdata())) for ln in ax.lines
                 if isinstance(ln, Line2D))
    assert hollow == sum(n < plots.MIN_BIN_COUNT for n in want)


def test_tune_plot_draws_the_budget_term():
    assert plot_term(Budget.from_config({"kl": 0.0002})) == "kl"
    assert plot_term(Budget.from_config({"flips": 0.01, "kl": 0.1})) == "flips"
    assert plot_term(Budget.from_config({"accuracy_drop": 0.01})) == "accuracy_drop"
