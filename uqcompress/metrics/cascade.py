"""A cascade: the compressed model answers where its selector accepts and defers to the baseline elsewhere.

ŷ_cascade = ŷ_c where accepted, ŷ_b where deferred. DESIGN.md "Definitions":

- ``accuracy`` = mean 1[ŷ_cascade = y]; ``deferral_rate`` = 1 - coverage (share sent to the baseline);
- ``agreement`` = mean 1[ŷ_cascade = ŷ_b]; ``flips``, ``c2i``, ``i2c`` of the cascade against the baseline
  (:func:`~uqcompress.metrics.flips`): only accepted inputs can flip;
- ``cost`` = (t_c + deferral_rate · t_b) / t_b, with t_c, t_b the measured per-sample latencies: the compressed model
  runs on every input, the baseline on the deferred ones; 1 = the baseline alone.

Predictions are the first argmax of each probability row, as everywhere in :mod:`uqcompress.metrics`.

Example:
    >>> from uqcompress.metrics import cascade, cascade_cost
    >>> base = [[0.9, 0.1], [0.8, 0.2], [0.3, 0.7], [0.6, 0.4]]
    >>> comp = [[0.9, 0.1], [0.4, 0.6], [0.2, 0.8], [0.4, 0.6]]
    >>> cascade(base, comp, [0, 0, 1, 1], accept=[True, False, True, True])
    {'accuracy': 1.0, 'deferral_rate': 0.25, 'agreement': 0.75, 'flips': 0.25, 'c2i': 0.0, 'i2c': 0.25}
    >>> cascade_cost(0.25, latency_compressed=0.2, latency_baseline=1.0)   # 0.2 + 0.25 * 1.0
    0.45
"""
from __future__ import annotations

import math

import numpy as np

from . import _validate as V
from ._kernels import argmax_rows
from .agreement import flips
from .classification import accuracy


def cascade(base_probs: V.ArrayLike, comp_probs: V.ArrayLike, labels: V.ArrayLike,
            accept: V.ArrayLike) -> dict[str, float]:
    """Accuracy, deferral rate, agreement with the baseline and flips of the cascade (see the module docstring).

    ``accept`` (N,) bool: True = the compressed model answers, False = deferred to the baseline. NaN (with a warning)
    for N = 0.
    """
    b = V.probs(base_probs, "base_probs")
    c = V.probs(comp_probs, "comp_probs")
    V.same_shape(b, "base_probs", c, "comp_probs")
    acc = V.binary(accept, "accept", b.shape[0], "base_probs")
    answered = np.where(acc[:, None], c, b)          # the cascade's probability rows: argmax = ŷ_cascade
    f = flips(b, answered, labels)
    n = b.shape[0]
    return {
        "accuracy": accuracy(answered, labels) if n else float("nan"),
        "deferral_rate": 1.0 - int(np.count_nonzero(acc)) / n if n else float("nan"),
        "agreement": f["agreement"],
        "flips": f["flips"],
        "c2i": f["c2i"],
        "i2c": f["i2c"],
    }


def cascade_cost(deferral_rate: float, latency_compressed: float, latency_baseline: float) -> float:
    """(t_c + deferral_rate · t_b) / t_b: the cascade's latency per input relative to the baseline alone.

    Latencies in any one unit (e.g. ms per sample), finite and > 0. NaN when ``deferral_rate`` is NaN.

    Example:
        >>> cascade_cost(0.1, 0.25, 1.0)
        0.35
    """
    for name, t in (("latency_compressed", latency_compressed), ("latency_baseline", latency_baseline)):
        if not (isinstance(t, (int, float, np.floating, np.integer)) and math.isfinite(t) and t > 0):
            raise ValueError(f"{name}={t!r} must be a finite latency > 0")
    d = float(deferral_rate)
    if math.isnan(d):
        return float("nan")
    if not 0.0 <= d <= 1.0:
        raise ValueError(f"deferral_rate={d} must be in [0, 1]")
    return (float(latency_compressed) + d * float(latency_baseline)) / float(latency_baseline)


def _predictions(x: V.ArrayLike, name: str, n: int | None) -> np.ndarray:
    """Predicted labels from (N, K) probabilities (first argmax) or an (N,) label vector."""
    a = V.to_numpy(x, name)
    if a.ndim == 2:
        p = V.probs(a, name)
        if n is not None and p.shape[0] != n:
            raise ValueError(f"{name} has {p.shape[0]} rows but confidence has length {n}")
        return argmax_rows(p)
    return V.labels(a, name, a.shape[0] if n is None else n, np.iinfo(np.int64).max, like="confidence")


def cascade_curve(base: V.ArrayLike, comp: V.ArrayLike, labels: V.ArrayLike,
                  confidence: V.ArrayLike) -> dict[str, np.ndarray]:
    """The cascade at every threshold, from deferring nothing to deferring everything.

    ``base`` / ``comp``: (N, K) probabilities or (N,) predicted labels; ``confidence`` (N,): the compressed model's
    confidence (higher = more confident; the least confident are deferred first). One point per cut between
    distinct confidence values (ties deferred together) plus the point that defers everything. Returns float64
    arrays ordered by increasing ``deferral_rate`` (0 ... 1): ``accuracy``, ``agreement`` (with the baseline) and
    ``threshold`` (accept iff confidence >= threshold; +inf defers everything). Empty arrays for N = 0.

    Example:
        >>> c = cascade_curve([0, 1, 1, 0], [0, 0, 1, 1], [0, 1, 1, 0], confidence=[0.9, 0.2, 0.6, 0.4])
        >>> c["deferral_rate"].tolist(), c["agreement"].tolist(), c["accuracy"].tolist()
        ([0.0, 0.25, 0.5, 0.75, 1.0], [0.5, 0.75, 1.0, 1.0, 1.0], [0.5, 0.75, 1.0, 1.0, 1.0])
    """
    conf = V.scores(confidence, "confidence")
    n = conf.shape[0]
    yb = _predictions(base, "base", n)
    yc = _predictions(comp, "comp", n)
    y = V.labels(labels, "labels", n, np.iinfo(np.int64).max, like="confidence")
    if n == 0:
        empty = np.zeros(0)
        return {"deferral_rate": empty, "accuracy": empty, "agreement": empty, "threshold": empty}
    order = np.argsort(-conf, kind="stable")
    c = conf[order]
    last = np.ones(n, dtype=bool)
    last[:-1] = c[1:] != c[:-1]                      # cut only between distinct values
    answered = np.concatenate([[0], np.flatnonzero(last) + 1])            # accepted count per cut, 0 ... n
    cum = lambda v: np.concatenate([[0], np.cumsum(v[order], dtype=np.int64)])[answered]  # noqa: E731
    comp_right, base_right, same = cum(yc == y), cum(yb == y), cum(yc == yb)
    base_total = int(np.count_nonzero(yb == y))
    acc = (comp_right + base_total - base_right) / n
    agree = (same + n - answered) / n
    thr = np.concatenate([[np.inf], c[last]])
    return {"deferral_rate": ((n - answered) / n)[::-1], "accuracy": acc[::-1], "agreement": agree[::-1],
            "threshold": thr[::-1]}


def deferral_for_agreement(base: V.ArrayLike, comp: V.ArrayLike, labels: V.ArrayLike, confidence: V.ArrayLike,
                           agreement: float = 0.99) -> dict[str, float]:
    """The point of :func:`cascade_curve` with the smallest deferral rate whose agreement is >= ``agreement``.

    Always exists (deferring everything agrees fully). Returns ``deferral_rate``, ``agreement``, ``accuracy`` and
    ``threshold`` of that point.

    Example:
        >>> deferral_for_agreement([0, 1, 1, 0], [0, 0, 1, 0], [0, 1, 1, 0], [0.9, 0.2, 0.6, 0.8], agreement=0.9)
        {'deferral_rate': 0.25, 'agreement': 1.0, 'accuracy': 1.0, 'threshold': 0.6}
    """
    if not 0.0 <= agreement <= 1.0:
        raise ValueError(f"agreement={agreement} must be in [0, 1]")
    curve = cascade_curve(base, comp, labels, confidence)
    if curve["agreement"].size == 0:
        nan = V.warn_undefined("deferral_for_agreement is undefined for 0 samples; returning NaN")
        return {"deferral_rate": nan, "agreement": nan, "accuracy": nan, "threshold": nan}
    i = int(np.argmax(curve["agreement"] >= agreement))
    return {k: float(curve[k][i]) for k in ("deferral_rate", "agreement", "accuracy", "threshold")}
