"""95% bootstrap intervals for the headline numbers of a run, stored next to them in ``results.json``.

For each headline key ``K`` (``baseline.accuracy``, ``compressed.accuracy``, ``compressed.flips``, ``compressed.c2i``,
``compressed.i2c``, ``compressed.coverage``, ``compressed.selective_risk``, ``compressed.saved_rate``,
``baseline.ood_auroc``, ``compressed.ood_auroc``) the run records ``K_ci_low`` and ``K_ci_high``: the percentile
bootstrap interval of :func:`uqcompress.metrics.bootstrap_ci` over the test samples (ID and OOD samples resampled
apart for AUROC), with the models, the temperature and the selector's threshold held fixed: it is the uncertainty that
comes from the size of the test set, not from refitting. ``ci.level``, ``ci.n_boot`` and ``ci.seed`` say how.

Every metric on the test split uses the same resampled rows (one seed, one sample size), so the intervals of the
baseline and the compressed model are paired. An interval that is undefined (e.g. the saved rate when the selector
abstains on nothing) is NaN, written as null.

Example:
    >>> import numpy as np
    >>> from uqcompress.report.intervals import headline_intervals
    >>> rng = np.random.default_rng(0)
    >>> y = rng.integers(0, 3, 400); p = rng.dirichlet(np.ones(3), 400)
    >>> ci = headline_intervals(y, p, p, p.max(1), p.max(1) > 0.5, n_boot=200)
    >>> ci["compressed.flips_ci_high"], ci["ci.level"]
    (0.0, 0.95)
"""
from __future__ import annotations

import warnings
from typing import Any

import numpy as np

from uqcompress import metrics as M

HEADLINE = ("baseline.accuracy", "compressed.accuracy", "compressed.flips", "compressed.c2i", "compressed.i2c",
            "compressed.coverage", "compressed.selective_risk", "compressed.saved_rate", "baseline.ood_auroc",
            "compressed.ood_auroc")
LOW, HIGH = "_ci_low", "_ci_high"


def _put(out: dict[str, Any], key: str, interval: tuple[float, float]) -> None:
    out[key + LOW], out[key + HIGH] = float(interval[0]), float(interval[1])


def headline_intervals(labels: Any, base_probs: Any, comp_probs: Any, comp_confidence: Any, comp_accept: Any,
                       ood_confidence: dict[str, tuple[Any, Any]] | None = None, *, n_boot: int = 1000,
                       level: float = 0.95, seed: int = 0) -> dict[str, Any]:
    """``K_ci_low`` / ``K_ci_high`` for every headline key ``K`` that the inputs define, plus ``ci.*``.

    ``ood_confidence`` maps ``baseline`` / ``compressed`` to (ID test confidence, OOD confidence). Vectorised: 1,000
    resamples of 2,000 test + 2,000 OOD samples take well under a second (``scripts/bench_report.py``).
    """
    kw = dict(n_boot=int(n_boot), alpha=round(1.0 - float(level), 12), seed=int(seed))  # 0.05, not 0.050000000000000044
    y = np.asarray(labels)
    out: dict[str, Any] = {}
    with warnings.catch_warnings():
        # undefined replicates (no abstention in a resample) are NaN; the pipeline already warned about the point value
        warnings.simplefilter("ignore", M.UndefinedMetricWarning)
        _put(out, "baseline.accuracy", M.bootstrap_ci(M.accuracy, base_probs, y, **kw))
        _put(out, "compressed.accuracy", M.bootstrap_ci(M.accuracy, comp_probs, y, **kw))
        flips = M.bootstrap_ci(M.flips, base_probs, comp_probs, y, **kw)
        for k in ("flips", "c2i", "i2c"):
            _put(out, f"compressed.{k}", flips[k])
        correct = np.asarray(comp_probs).argmax(-1) == y
        sel = M.bootstrap_ci(M.selective, np.asarray(comp_confidence, dtype=np.float64), correct,
                             np.asarray(comp_accept, dtype=bool), **kw)
        for k in ("coverage", "selective_risk", "saved_rate"):
            _put(out, f"compressed.{k}", sel[k])
        for who, (cid, cood) in (ood_confidence or {}).items():
            _put(out, f"{who}.ood_auroc", M.bootstrap_ci(M.auroc, cid, cood, **kw))
    out.update({"ci.level": float(level), "ci.n_boot": int(n_boot), "ci.seed": int(seed)})
    return out


def one_hot(pred: Any, num_classes: int) -> np.ndarray:
    """Rows that put all mass on ``pred``: enough for accuracy and flips, which depend on the argmax only.

    >>> one_hot([1, 0], 3).tolist()
    [[0.0, 1.0, 0.0], [1.0, 0.0, 0.0]]
    """
    pred = np.asarray(pred, dtype=np.int64)
    out = np.zeros((pred.size, int(num_classes)), dtype=np.float32)
    out[np.arange(pred.size), pred] = 1.0
    return out


def intervals_from_predictions(pred: Any, *, n_boot: int = 1000, level: float = 0.95, seed: int = 0
                               ) -> dict[str, Any]:
    """The same intervals from a run's ``predictions.csv`` (a DataFrame), for runs written before they were stored."""
    test = pred[pred["split"] == "test"]
    y = test["label"].to_numpy(np.int64)
    k = int(max(y.max(), test["baseline_pred"].max(), test["compressed_pred"].max())) + 1
    ood = pred[pred["split"] == "ood"]
    ood_conf = ({who: (test[f"{who}_confidence"].to_numpy(), ood[f"{who}_confidence"].to_numpy())
                 for who in ("baseline", "compressed")} if len(ood) else None)
    return headline_intervals(y, one_hot(test["baseline_pred"], k), one_hot(test["compressed_pred"], k),
                              test["compressed_confidence"].to_numpy(), test["compressed_accepted"].to_numpy(bool),
                              ood_conf, n_boot=n_boot, level=level, seed=seed)
