"""Exact binomial bounds and the SGR threshold search behind the guaranteed selectors (pure numpy/scipy).

A *cut* accepts every sample whose confidence is >= one of the distinct calibration confidences, so tied samples are
accepted or rejected together. At a cut that accepts ``n`` calibration samples of which ``e`` are losses (errors, or
disagreements with the baseline), the one-sided Clopper-Pearson bound ``binomial_upper_bound(e, n, d)`` is the
largest loss rate p with P(Binomial(n, p) <= e) >= d: for a threshold fixed before the draw, the accepted losses are
Binomial(n, R) given n (R = the population rate of loss among accepted), so R <= the bound with probability >= 1 - d.

:func:`sgr_search` is SGR (Geifman & El-Yaniv 2017, "Selective classification for deep neural networks", NeurIPS,
Algorithm 1): a binary search over the cuts that tests ``k = ceil(log2(G + 1))`` of the G cuts, each at confidence
``1 - delta / k`` (union bound), and keeps the largest-coverage tested cut whose bound is <= target. It works on a
batch of calibration draws at once (the resplit study) and on one (the selectors).

Example:
    >>> import numpy as np
    >>> round(float(binomial_upper_bound(0, 100, 0.05)), 4)   # no error in 100: rate <= 2.95% at 95% confidence
    0.0295
    >>> conf = np.linspace(1, 0, 2000)                 # errors only among the 100 least confident
    >>> fit = sgr(conf, np.arange(2000) >= 1900, target=0.01, delta=0.1)
    >>> fit.accepted, fit.losses, fit.tests, round(fit.bound, 4)     # 9 errors in 1909: rate <= 0.99% w.p. 0.9
    (1909, 9, 11, 0.0099)
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np


def binomial_upper_bound(errors: np.ndarray | int, n: np.ndarray | int, delta: np.ndarray | float) -> np.ndarray:
    """Exact one-sided (1 - delta) Clopper-Pearson upper bound on a binomial proportion.

    The b in [0, 1] with P(Binomial(n, b) <= errors) = delta (``betaincinv(errors + 1, n - errors, 1 - delta)``);
    1 when errors = n (also n = 0: nothing observed, nothing bounded). Broadcasts over arrays; float64.

    Example:
        >>> from scipy.stats import binom
        >>> b = binomial_upper_bound(3, 200, 0.1); round(float(binom.cdf(3, 200, b)), 12)
        0.1
    """
    e = np.asarray(errors, dtype=np.float64)
    n = np.asarray(n, dtype=np.float64)
    d = np.asarray(delta, dtype=np.float64)
    if np.any(e < 0) or np.any(e > n):
        raise ValueError("binomial_upper_bound needs 0 <= errors <= n")
    if np.any(~((d > 0) & (d < 1))):
        raise ValueError("binomial_upper_bound needs 0 < delta < 1")
    from scipy.special import betaincinv  # here, not at import: every job imports all selectors (registry), few use it

    full = e >= n
    with np.errstate(invalid="ignore", divide="ignore"):
        b = betaincinv(e + 1.0, np.where(full, 1.0, n - e), 1.0 - d)
    return np.where(full, 1.0, b)


@dataclass(frozen=True)
class Cuts:
    """The distinct thresholds of a calibration split, most confident first, with cumulative counts.

    ``threshold[j]`` accepts ``accepted[j]`` samples (confidence >= threshold[j]) of which ``losses[j]`` are losses.
    """

    threshold: np.ndarray   # (G,) float64, strictly decreasing
    accepted: np.ndarray    # (G,) int64, strictly increasing, accepted[-1] = n
    losses: np.ndarray      # (G,) int64, non-decreasing


def cuts(confidence: np.ndarray, loss: np.ndarray) -> Cuts:
    """Group ``confidence`` (N,) into its distinct values (descending) with cumulative accepted / loss counts."""
    conf = np.asarray(confidence, dtype=np.float64)
    bad = np.asarray(loss, dtype=bool)
    if conf.ndim != 1 or bad.shape != conf.shape:
        raise ValueError(f"confidence and loss must be 1-D of the same length; got {conf.shape} and {bad.shape}")
    if conf.size == 0:
        raise ValueError("cannot fit a threshold on an empty calibration split")
    if not np.isfinite(conf).all():
        raise ValueError(f"confidence has NaN/inf at index {int(np.argmax(~np.isfinite(conf)))}")
    order = np.argsort(-conf, kind="stable")
    c = conf[order]
    last = np.ones(c.size, dtype=bool)
    last[:-1] = c[1:] != c[:-1]                     # a cut only between distinct values
    accepted = np.flatnonzero(last) + 1
    losses = np.cumsum(bad[order], dtype=np.int64)[last]
    return Cuts(c[last], accepted.astype(np.int64), losses)


def sgr_tests(n_cuts: np.ndarray | int) -> np.ndarray:
    """Number of cuts SGR's binary search tests among ``n_cuts`` (>= 1): ceil(log2(n_cuts + 1))."""
    g = np.asarray(n_cuts, dtype=np.int64)
    return np.frexp(g.astype(np.float64))[1].astype(np.int64)   # the exponent of g = bit length = ceil(log2(g + 1))


def sgr_search(accepted: np.ndarray, losses: np.ndarray, n_cuts: np.ndarray, target: float,
               delta: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """SGR's binary search over the cuts of one or many calibration draws.

    Args:
        accepted, losses: (..., G) cumulative counts per cut (as :class:`Cuts`), padded past ``n_cuts``.
        n_cuts: (...,) number of real cuts per draw (>= 1).
        target: the largest acceptable loss rate among accepted samples, in [0, 1).
        delta: allowed probability that the certified bound is wrong, in (0, 1).

    Returns:
        (chosen, bound, tests): ``chosen`` (...,) = the number of cuts accepted (0 = none certified, abstain on
        everything), ``bound`` the (1 - delta) bound at the chosen cut (NaN when none), ``tests`` = k.
    """
    acc = np.asarray(accepted, dtype=np.int64)
    los = np.asarray(losses, dtype=np.int64)
    g = np.asarray(n_cuts, dtype=np.int64)
    if np.any(g < 1):
        raise ValueError("sgr_search needs at least one cut per calibration draw")
    k = sgr_tests(g)
    level = delta / k
    lo = np.zeros_like(g)                       # lo: the largest cut known to pass (0 = accept nothing)
    hi = g + 1                                  # hi: the smallest cut known to fail (g + 1 = past the last)
    bound = np.full(g.shape, np.nan)
    while True:
        active = hi - lo > 1
        if not active.any():
            break
        mid = (lo + hi) // 2
        j = np.where(active, mid - 1, 0)[..., None]
        n = np.take_along_axis(acc, j, -1)[..., 0]
        e = np.take_along_axis(los, j, -1)[..., 0]
        b = binomial_upper_bound(e, n, level)
        ok = active & (b <= target)
        lo = np.where(ok, mid, lo)
        hi = np.where(active & ~ok, mid, hi)
        bound = np.where(ok, b, bound)
    return lo, bound, k


@dataclass(frozen=True)
class GuaranteeFit:
    """What SGR certified on one calibration split.

    ``threshold`` accepts confidence >= it (+inf: nothing certified, abstain on everything); ``bound`` is the
    certified (1 - delta) upper bound on the loss rate among accepted inputs (NaN when nothing is certified);
    ``accepted`` / ``losses`` are the calibration counts at the threshold out of ``n``; ``tests`` = k.
    """

    threshold: float
    bound: float
    accepted: int
    losses: int
    n: int
    tests: int
    target: float
    delta: float

    @property
    def valid(self) -> bool:
        return self.accepted > 0

    @property
    def coverage(self) -> float:
        return self.accepted / self.n

    @property
    def empirical_loss(self) -> float:
        return self.losses / self.accepted if self.accepted else float("nan")


def check_target_delta(target: float, delta: float, who: str) -> tuple[float, float]:
    """``(target, delta)`` as floats, or a one-line error naming the bad option."""
    if isinstance(target, bool) or not isinstance(target, (int, float)) or not 0.0 <= target < 1.0:
        raise ValueError(f"selector.target={target!r} must be a loss rate in [0, 1) ({who})")
    if isinstance(delta, bool) or not isinstance(delta, (int, float)) or not 0.0 < delta < 1.0:
        raise ValueError(f"selector.delta={delta!r} must be a probability in (0, 1) ({who})")
    return float(target), float(delta)


def sgr(confidence: np.ndarray, loss: np.ndarray, target: float, delta: float) -> GuaranteeFit:
    """SGR on one calibration split: the largest-coverage threshold whose loss rate is certified <= ``target``.

    ``confidence`` (N,) is higher = more confident; ``loss`` (N,) is True where the answer counts against the target
    (an error, or a disagreement with the baseline).
    """
    target, delta = check_target_delta(target, delta, "sgr")
    c = cuts(confidence, loss)
    chosen, bound, tests = sgr_search(c.accepted, c.losses, np.int64(len(c.threshold)), target, delta)
    j = int(chosen)
    n = int(c.accepted[-1])
    if j == 0:
        return GuaranteeFit(math.inf, math.nan, 0, 0, n, int(tests), target, delta)
    return GuaranteeFit(float(c.threshold[j - 1]), float(bound), int(c.accepted[j - 1]), int(c.losses[j - 1]), n,
                        int(tests), target, delta)
