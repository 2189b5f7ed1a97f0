"""Rank correlation across a set of runs (e.g. flips vs KL over a compression sweep)."""
from __future__ import annotations

import numpy as np

from . import _validate as V
from ._kernels import dot


def _average_ranks(x: np.ndarray) -> np.ndarray:
    """1-based ranks, tied values sharing the mean of their positions."""
    order = np.argsort(x)  # any order within ties: they share one rank
    s = x[order]
    n = s.size
    start = np.flatnonzero(np.concatenate([[True], s[1:] != s[:-1]]))
    end = np.concatenate([start[1:], [n]])  # exclusive
    mean_rank = (start + end + 1) / 2.0  # mean of start+1 .. end
    ranks = np.empty(n, dtype=np.float64)
    ranks[order] = np.repeat(mean_rank, end - start)
    return ranks


def spearman(x: V.ArrayLike, y: V.ArrayLike) -> float:
    """Spearman rank correlation of two equally long 1-D sequences, in [-1, 1].

    Pearson correlation of the average ranks (ties share their mean rank, as ``scipy.stats.spearmanr``).
    NaN (with a warning) for fewer than 2 points or when either input is constant.

    Example:
        >>> spearman([0.01, 0.05, 0.02, 0.10], [0.001, 0.02, 0.004, 0.03])  # flips vs KL over four runs
        1.0
    """
    a = V.scores(x, "x")
    b = V.scores(y, "y", a.shape[0], "x")
    if a.shape[0] < 2:
        return V.warn_undefined("spearman is undefined for fewer than 2 points; returning NaN")
    ra = _average_ranks(a)
    rb = _average_ranks(b)
    ra -= ra.mean()
    rb -= rb.mean()
    denom = np.sqrt(dot(ra, ra) * dot(rb, rb))
    if denom == 0.0:
        return V.warn_undefined("spearman is undefined: an input is constant; returning NaN")
    return float(np.clip(dot(ra, rb) / denom, -1.0, 1.0))
