"""Percentile bootstrap confidence intervals for any metric of this package (or any function of arrays).

Resampling: with ``paired=True`` the rows of all arrays are resampled jointly (one index vector per replicate, e.g.
probs with their labels, or base / comp / labels); with ``paired=False`` each array is resampled on its own (ID and
OOD confidences of :func:`~uqcompress.metrics.ood`). The interval is the (alpha/2, 1 - alpha/2) percentile of the
replicates (numpy's default linear interpolation). Replicates come from ``numpy.random.default_rng(seed)``.

Speed: :func:`accuracy`, :func:`flips`, :func:`selective` and :func:`auroc` are computed for all replicates at once
(counts of per-sample indicators, or per-value counts for AUROC's rank statistic), with exactly the same resamples
as the generic path, which calls the metric once per replicate.
"""
from __future__ import annotations

import warnings
from typing import Any, Callable, Iterator

import numpy as np

from . import _validate as V
from ._kernels import argmax_rows
from .agreement import flips
from .classification import accuracy
from .ood import auroc, ood
from .selective import _accept_mask, selective

CHUNK_ELEMS = 1 << 22  # resampling indices generated per chunk (x 8 bytes)
Interval = tuple[float, float]


def _index_chunks(rng: np.random.Generator, sizes: list[int], n_boot: int, paired: bool) -> Iterator[list[np.ndarray]]:
    """Resampling indices, chunk by chunk: a list with one (b, n_j) index array per array (one shared if paired)."""
    per_rep = sizes[0] if paired else sum(sizes)
    chunk = max(1, min(n_boot, CHUNK_ELEMS // max(1, per_rep)))
    done = 0
    while done < n_boot:
        b = min(chunk, n_boot - done)
        if paired:
            yield [rng.integers(0, sizes[0], size=(b, sizes[0]))]
        else:
            yield [rng.integers(0, n, size=(b, n)) for n in sizes]
        done += b


# ---- vectorised replicates: per-sample indicator columns (bool, N x m); a replicate's counts are the number of
# drawn rows where each indicator is set: one gather + count per column, no Python loop over replicates ----------

def _ratio(num: np.ndarray, den: np.ndarray) -> np.ndarray:
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(den > 0, num / np.where(den > 0, den, 1.0), np.nan)


def _accuracy_stats(probs, labels):
    p = V.probs(probs, "probs")
    y = V.labels(labels, "labels", p.shape[0], p.shape[1])
    ok = argmax_rows(p) == y
    return ok[:, None], lambda s, n: s[:, 0] / n


def _flips_stats(base_probs, comp_probs, labels):
    b = V.probs(base_probs, "base_probs")
    c = V.probs(comp_probs, "comp_probs")
    V.same_shape(b, "base_probs", c, "comp_probs")
    y = V.labels(labels, "labels", b.shape[0], b.shape[1], like="base_probs")
    pb, pc = argmax_rows(b), argmax_rows(c)
    ok_b, ok_c = pb == y, pc == y
    cols = np.stack([ok_b > ok_c, ok_c > ok_b, pb != pc], axis=1)

    def combine(s, n):
        return {"flips": (s[:, 0] + s[:, 1]) / n, "c2i": s[:, 0] / n, "i2c": s[:, 1] / n,
                "all_flips": s[:, 2] / n, "agreement": (n - s[:, 2]) / n}

    return cols, combine


def _selective_stats(confidence, correct, accept):
    conf = V.scores(confidence, "confidence")
    ok = V.binary(correct, "correct", conf.shape[0], "confidence")
    acc = _accept_mask(conf, accept)
    wrong = ~ok
    cols = np.stack([acc, acc & wrong, ~acc & wrong, wrong], axis=1)

    def combine(s, n):
        return {"coverage": s[:, 0] / n, "selective_risk": _ratio(s[:, 1], s[:, 0]),
                "saved_rate": _ratio(s[:, 2], n - s[:, 0]), "error_catch_rate": _ratio(s[:, 2], s[:, 3])}

    return cols, combine


_PAIRED_FAST: dict[Callable, Callable] = {accuracy: _accuracy_stats, flips: _flips_stats, selective: _selective_stats}
_UNPAIRED = {auroc, ood}  # metrics of two independent samples (ID, OOD)


def _paired_fast(builder, arrays, kwargs, n_boot, rng) -> Any:
    cols, combine = builder(*arrays, **kwargs)
    n = cols.shape[0]
    cols = [np.ascontiguousarray(c) for c in cols.T]
    out = []
    for (idx,) in _index_chunks(rng, [n], n_boot, paired=True):
        sums = np.stack([np.count_nonzero(c[idx], axis=1) for c in cols], axis=1).astype(np.float64)
        out.append(combine(sums, n))
    return _stack(out)


def _counts(idx: np.ndarray, n: int) -> np.ndarray:
    """(b, n) float64 matrix: how often each index in [0, n) was drawn in each of b replicates."""
    b = idx.shape[0]
    flat = idx + (np.arange(b) * n)[:, None]
    return np.bincount(flat.ravel(), minlength=b * n).reshape(b, n).astype(np.float64)


def _auroc_fast(arrays, n_boot, rng) -> np.ndarray:
    cid = V.scores(arrays[0], "confidence_id")
    cood = V.scores(arrays[1], "confidence_ood")
    n_id, n_ood = cid.shape[0], cood.shape[0]
    # index of each sample's distinct value in the union; per replicate, counts per value -> Mann-Whitney with ties
    _, q = np.unique(np.concatenate([cid, cood]), return_inverse=True)
    u = int(q.max()) + 1
    q_id, q_ood = q[:n_id], q[n_id:]
    out = []
    for idx_id, idx_ood in _index_chunks(rng, [n_id, n_ood], n_boot, paired=False):
        g_id = _counts(q_id[idx_id], u)
        g_ood = _counts(q_ood[idx_ood], u)
        above = n_id - np.cumsum(g_id, axis=1)  # ID samples with confidence above each value
        out.append(((g_ood * (above + 0.5 * g_id)).sum(axis=1)) / (n_id * n_ood))
    return np.concatenate(out)


def _stack(parts: list) -> Any:
    if isinstance(parts[0], dict):
        return {k: np.concatenate([p[k] for p in parts]) for k in parts[0]}
    return np.concatenate(parts)


def _generic(metric_fn, arrays, kwargs, n_boot, rng, paired) -> Any:
    sizes = [a.shape[0] for a in arrays]
    values: list = []
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", V.UndefinedMetricWarning)  # summarised once below
        for chunk in _index_chunks(rng, sizes, n_boot, paired):
            for r in range(chunk[0].shape[0]):
                if paired:
                    sample = [a[chunk[0][r]] for a in arrays]
                else:
                    sample = [a[ix[r]] for a, ix in zip(arrays, chunk)]
                values.append(metric_fn(*sample, **kwargs))
    if isinstance(values[0], dict):
        return {k: np.array([v[k] for v in values], dtype=np.float64) for k in values[0]}
    return np.array(values, dtype=np.float64)


def _interval(vals: np.ndarray, alpha: float, name: str) -> Interval:
    n_nan = int(np.isnan(vals).sum())
    if n_nan == vals.size:
        V.warn_undefined(f"bootstrap_ci: {name} is NaN in every resample; returning (NaN, NaN)")
        return float("nan"), float("nan")
    if n_nan:
        V.warn_undefined(f"bootstrap_ci: {name} is NaN in some resamples; the interval uses the others")
    lo, hi = np.nanpercentile(vals, [50.0 * alpha, 100.0 - 50.0 * alpha])
    return float(lo), float(hi)


def bootstrap_ci(
    metric_fn: Callable[..., Any],
    *arrays: V.ArrayLike,
    n_boot: int = 1000,
    alpha: float = 0.05,
    seed: int = 0,
    paired: bool | None = None,
    **kwargs: Any,
) -> Interval | dict[str, Interval]:
    """Percentile bootstrap (1 - alpha) confidence interval of ``metric_fn(*arrays, **kwargs)``.

    ``arrays`` are resampled along their first axis; ``kwargs`` are passed unchanged (scalars only, e.g.
    ``n_bins=15`` or a threshold ``accept=0.5``). ``paired`` (default: False for :func:`auroc` / :func:`ood`, True
    otherwise) resamples rows of all arrays jointly. Returns ``(low, high)`` for a scalar metric, or a dict of
    ``(low, high)`` per key for a dict-valued metric. Replicates where the metric is undefined (NaN) are left out,
    with a warning.

    Example:
        >>> import numpy as np
        >>> from uqcompress import metrics as M
        >>> rng = np.random.default_rng(0)
        >>> probs = rng.dirichlet(np.ones(3), size=500)
        >>> labels = rng.integers(0, 3, size=500)
        >>> low, high = M.bootstrap_ci(M.accuracy, probs, labels, n_boot=200, seed=0)
        >>> bool(low < M.accuracy(probs, labels) < high)
        True
    """
    if isinstance(n_boot, bool) or not isinstance(n_boot, (int, np.integer)) or n_boot < 1:
        raise ValueError(f"n_boot must be a positive integer; got {n_boot!r}")
    if not 0.0 < float(alpha) < 1.0:
        raise ValueError(f"alpha must be in (0, 1); got {alpha!r}")
    if not arrays:
        raise ValueError("bootstrap_ci needs at least one array to resample")
    for k, v in kwargs.items():
        if np.ndim(v) > 0:
            raise ValueError(f"keyword {k} is an array; pass arrays positionally so they are resampled")
    if paired is None:
        paired = metric_fn not in _UNPAIRED
    point = metric_fn(*arrays, **kwargs)  # validates the inputs with the metric's own messages
    np_arrays = [V.to_numpy(a, f"array {i}") for i, a in enumerate(arrays)]
    sizes = [a.shape[0] if a.ndim else 0 for a in np_arrays]
    if any(a.ndim == 0 for a in np_arrays):
        raise ValueError("bootstrap_ci: every positional argument must be an array with rows to resample")
    if paired and len(set(sizes)) > 1:
        raise ValueError(f"paired resampling needs arrays of equal length; got lengths {sizes} "
                         "(pass paired=False to resample each array on its own)")
    if min(sizes) == 0:
        nan = (float("nan"), float("nan"))
        V.warn_undefined("bootstrap_ci is undefined for an empty array; returning (NaN, NaN)")
        return {k: nan for k in point} if isinstance(point, dict) else nan

    rng = np.random.default_rng(seed)
    if paired and metric_fn in _PAIRED_FAST:
        reps = _paired_fast(_PAIRED_FAST[metric_fn], np_arrays, kwargs, int(n_boot), rng)
    elif not paired and metric_fn is auroc and not kwargs:
        reps = _auroc_fast(np_arrays, int(n_boot), rng)
    else:
        reps = _generic(metric_fn, np_arrays, kwargs, int(n_boot), rng, paired)
    name = getattr(metric_fn, "__name__", "metric")
    if isinstance(reps, dict):
        return {k: _interval(v, float(alpha), f"{name}[{k!r}]") for k, v in reps.items()}
    return _interval(reps, float(alpha), name)
