"""How much a compressed model's predictions differ from its baseline's: flips, KL and Jensen-Shannon divergence.

Inputs are (N, K) probabilities of the baseline (``base_*``) and the compressed model (``comp_*``) on the same rows,
or their logits for the ``*_from_logits`` variants (log-probabilities are logits too). All sums are float64.
"""
from __future__ import annotations

import numpy as np

from . import _validate as V
from ._kernels import argmax_rows, row_blocks


def _pair(base: V.ArrayLike, comp: V.ArrayLike, kind: str) -> tuple[np.ndarray, np.ndarray]:
    check = V.probs if kind == "probs" else V.logits
    b = check(base, f"base_{kind}")
    c = check(comp, f"comp_{kind}")
    V.same_shape(b, f"base_{kind}", c, f"comp_{kind}")
    return b, c


def flips(base_probs: V.ArrayLike, comp_probs: V.ArrayLike, labels: V.ArrayLike) -> dict[str, float]:
    """Prediction flips between baseline and compressed model (Dutta et al. 2024), fractions of N in [0, 1].

    - ``c2i``: correct under the baseline, incorrect under the compressed model; ``i2c``: the reverse.
    - ``flips`` = c2i + i2c (correctness changed).
    - ``all_flips``: the predicted class changed (also counts wrong -> other wrong), so all_flips >= flips.
    - ``agreement`` = 1 - all_flips.
    Predictions are the first argmax of each row. All NaN (with a warning) for N = 0.

    Example:
        >>> b = [[0.9, 0.1, 0.0], [0.2, 0.8, 0.0], [0.1, 0.2, 0.7], [0.6, 0.4, 0.0]]
        >>> c = [[0.4, 0.6, 0.0], [0.2, 0.8, 0.0], [0.1, 0.7, 0.2], [0.3, 0.7, 0.0]]
        >>> flips(b, c, [0, 1, 0, 1])
        {'flips': 0.5, 'c2i': 0.25, 'i2c': 0.25, 'all_flips': 0.75, 'agreement': 0.25}
    """
    b, c = _pair(base_probs, comp_probs, "probs")
    y = V.labels(labels, "labels", b.shape[0], b.shape[1], like="base_probs")
    n = b.shape[0]
    if n == 0:
        nan = V.warn_undefined("flips are undefined for 0 samples; returning NaN")
        return {"flips": nan, "c2i": nan, "i2c": nan, "all_flips": nan, "agreement": nan}
    pb, pc = argmax_rows(b), argmax_rows(c)
    ok_b, ok_c = pb == y, pc == y
    c2i = int(np.count_nonzero(ok_b > ok_c))
    i2c = int(np.count_nonzero(ok_c > ok_b))
    changed = int(np.count_nonzero(pb != pc))
    return {
        "flips": (c2i + i2c) / n,
        "c2i": c2i / n,
        "i2c": i2c / n,
        "all_flips": changed / n,
        "agreement": (n - changed) / n,
    }


def _clamped(x64: np.ndarray, raw: np.ndarray) -> np.ndarray:
    """``x64`` with exact zeros raised to the smallest positive normal float64 (2.2e-308), so ln stays finite
    (ln 0 -> -708.4); float32/16 inputs have no smaller positive values, so only zeros move. No copy if none."""
    return np.maximum(x64, V.TINY) if raw.min() == 0 else x64


def _row_kl_probs(p: np.ndarray, q: np.ndarray) -> np.ndarray:
    """Per-row KL(p || q) of the row-normalised distributions, float64, rows clipped at 0 (rounding)."""
    n, k = p.shape
    out = np.empty(n, dtype=np.float64)
    for rows in row_blocks(n, k):
        p64 = p[rows].astype(np.float64)
        q64 = q[rows].astype(np.float64)
        sp, sq = np.einsum("ij->i", p64), np.einsum("ij->i", q64)
        # ln(p / q): one log instead of two, and exact where p ~ q
        ratio = np.divide(_clamped(p64, p[rows]), _clamped(q64, q[rows]), out=q64)
        np.log(ratio, out=ratio)
        # rows with p = 0 contribute 0 * finite = 0, as scipy.special.rel_entr
        # KL of p/sp against q/sq = (1/sp) sum p ln(p/q) - ln(sp/sq): exact renormalisation of rows that are off
        # by up to the 1e-3 tolerance (e.g. float16 softmax), which keeps KL >= 0.
        out[rows] = np.einsum("ij,ij->i", p64, ratio) / sp - np.log(sp / sq)
    return np.maximum(out, 0.0, out=out)


def kl_divergence(base_probs: V.ArrayLike, comp_probs: V.ArrayLike) -> float:
    """Mean over rows of KL(base || comp) = sum_k p_b ln(p_b / p_c), in nats, >= 0 and 0 iff the rows are equal.

    Terms with p_b = 0 contribute 0 (as ``scipy.special.rel_entr``). ln is taken in float64 with probabilities clamped
    below at the smallest positive normal float64 (2.2e-308), which only moves exact zeros: p_c = 0 where p_b > 0
    gives a large finite term (p_b * (ln p_b + 708.4)) instead of inf. Rows are renormalised to sum to 1 (they may be
    off by 1e-3). Prefer :func:`kl_from_logits` when logits are at hand: no clamping is needed there.
    NaN (with a warning) for N = 0.

    Example:
        >>> round(kl_divergence([[0.5, 0.5]], [[0.9, 0.1]]), 6)
        0.510826
    """
    p, q = _pair(base_probs, comp_probs, "probs")
    if p.shape[0] == 0:
        return V.warn_undefined("kl_divergence is undefined for 0 samples; returning NaN")
    return float(_row_kl_probs(p, q).mean())


def js_divergence(base_probs: V.ArrayLike, comp_probs: V.ArrayLike) -> float:
    """Mean over rows of the Jensen-Shannon divergence, in nats, in [0, ln 2]; symmetric, 0 iff rows are equal.

    JS(p, q) = KL(p || m) / 2 + KL(q || m) / 2 with m = (p + q) / 2, on row-normalised p and q; terms with a zero
    probability contribute 0 (m > 0 wherever p or q is). This is the square of
    ``scipy.spatial.distance.jensenshannon``. NaN (with a warning) for N = 0.

    Example:
        >>> round(js_divergence([[1.0, 0.0]], [[0.0, 1.0]]), 6)  # ln 2
        0.693147
    """
    p, q = _pair(base_probs, comp_probs, "probs")
    n, k = p.shape
    if n == 0:
        return V.warn_undefined("js_divergence is undefined for 0 samples; returning NaN")
    total = 0.0
    for rows in row_blocks(n, k):
        p64 = p[rows].astype(np.float64)
        q64 = q[rows].astype(np.float64)
        p64 /= np.einsum("ij->i", p64)[:, None]
        q64 /= np.einsum("ij->i", q64)[:, None]
        m = 0.5 * (p64 + q64)  # > 0 wherever p or q is; elsewhere both terms are 0 * finite
        m = np.maximum(m, V.TINY, out=m)
        js = np.einsum("ij,ij->i", p64, np.log(np.divide(_clamped(p64, p[rows]), m)))
        js += np.einsum("ij,ij->i", q64, np.log(np.divide(_clamped(q64, q[rows]), m)))
        total += float(np.maximum(0.5 * js, 0.0).sum())
    return total / n


def _exp_logits(z: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """For a block of logits: float64 logits z, e = exp(z - c), s = sum_k e and lse = ln sum_k exp(z) per row.

    So softmax = e / s and log-softmax = z - lse, exactly (never log(exp(.)), so no log 0 where p underflows).
    The shift c is 0 when every logit is in (-700, 300), where exp can neither overflow a row sum nor underflow a
    whole row; otherwise it is the row max.
    """
    z = z.astype(np.float64)
    if z.min() > -700.0 and z.max() < 300.0:
        e = np.exp(z)
        s = np.einsum("ij->i", e)
        return z, e, s, np.log(s)
    c = z.max(axis=1)
    e = np.exp(z - c[:, None])
    s = np.einsum("ij->i", e)
    return z, e, s, c + np.log(s)


def kl_rows_from_logits(base_logits: V.ArrayLike, comp_logits: V.ArrayLike) -> np.ndarray:
    """Per-row KL(softmax(base) || softmax(comp)) in nats, float64 (N,), from logits (or log-probabilities).

    Float64 throughout: with p_b = softmax(z_b) and lse = ln sum exp(z) per row,
    KL = sum_k p_b (z_b - z_c) + lse(z_c) - lse(z_b), which never takes a log of a probability; rounding below 0
    is clipped to 0.

    Example:
        >>> import math
        >>> kl_rows_from_logits([[0.0, 0.0], [1.0, 1.0]], [[math.log(9.0), 0.0], [1.0, 1.0]]).round(6).tolist()
        [0.510826, 0.0]
    """
    a, b = _pair(base_logits, comp_logits, "logits")
    n, k = a.shape
    out = np.empty(n, dtype=np.float64)
    for rows in row_blocks(n, k):
        za, ea, sa, lse_a = _exp_logits(a[rows])
        zb, _, _, lse_b = _exp_logits(b[rows])
        za -= zb
        out[rows] = np.einsum("ij,ij->i", ea, za) / sa + (lse_b - lse_a)
    return np.maximum(out, 0.0, out=out)


def kl_from_logits(base_logits: V.ArrayLike, comp_logits: V.ArrayLike) -> float:
    """Mean KL(softmax(base) || softmax(comp)) in nats, from logits (or log-probabilities), with no log(0).

    The mean of :func:`kl_rows_from_logits`. NaN (with a warning) for N = 0.

    Example:
        >>> import math
        >>> round(kl_from_logits([[0.0, 0.0]], [[math.log(9.0), 0.0]]), 6)  # = KL([.5, .5] || [.9, .1])
        0.510826
    """
    kl = kl_rows_from_logits(base_logits, comp_logits)
    if kl.shape[0] == 0:
        return V.warn_undefined("kl_from_logits is undefined for 0 samples; returning NaN")
    return float(kl.mean())


#: what :func:`kl_distribution` returns, in order
KL_DISTRIBUTION_KEYS = ("kl_mean", "kl_sem", "kl_median", "kl_p90", "kl_p95", "kl_p99", "kl_p999", "kl_max")


def kl_distribution(base_logits: V.ArrayLike, comp_logits: V.ArrayLike) -> dict[str, float]:
    """The distribution of per-sample KL(base || comp) in nats, as llama.cpp's ``llama-perplexity --kl-divergence``
    reports it (there per token, here per sample: per question for a multiple-choice LM).

    - ``kl_mean``: the mean (equals :func:`kl_from_logits`); ``kl_sem``: its standard error, std (ddof=1) / sqrt(N);
    - ``kl_median``, ``kl_p90``, ``kl_p95``, ``kl_p99``, ``kl_p999``: the 50th, 90th, 95th, 99th and 99.9th
      percentiles, linearly interpolated between order statistics (numpy's default ``linear`` method);
    - ``kl_max``: the largest per-sample KL.

    Per-sample values come from :func:`kl_rows_from_logits`. All NaN (with a warning) for N = 0; ``kl_sem`` is NaN
    (with a warning) for N = 1.

    Example:
        >>> import math
        >>> d = kl_distribution([[0.0, 0.0]] * 4, [[0.0, 0.0]] * 3 + [[math.log(9.0), 0.0]])
        >>> round(d["kl_mean"], 6), round(d["kl_max"], 6), d["kl_median"]
        (0.127706, 0.510826, 0.0)
    """
    kl = kl_rows_from_logits(base_logits, comp_logits)
    n = kl.shape[0]
    if n == 0:
        nan = V.warn_undefined("kl_distribution is undefined for 0 samples; returning NaN")
        return dict.fromkeys(KL_DISTRIBUTION_KEYS, nan)
    q = np.percentile(kl, [50.0, 90.0, 95.0, 99.0, 99.9])
    if n > 1:
        sem = float(kl.std(ddof=1) / np.sqrt(n))
    else:
        sem = V.warn_undefined("the standard error of the mean KL is undefined for 1 sample; returning NaN")
    return {"kl_mean": float(kl.mean()), "kl_sem": sem, "kl_median": float(q[0]), "kl_p90": float(q[1]),
            "kl_p95": float(q[2]), "kl_p99": float(q[3]), "kl_p999": float(q[4]), "kl_max": float(kl.max())}


def js_from_logits(base_logits: V.ArrayLike, comp_logits: V.ArrayLike) -> float:
    """Mean Jensen-Shannon divergence of softmax(base) and softmax(comp), in nats, in [0, ln 2], from logits.

    Log-probabilities are exact float64 log-softmax values; ln m is clamped at 2.2e-308 only where both
    probabilities underflow (those terms are 0). NaN (with a warning) for N = 0.

    Example:
        >>> round(js_from_logits([[0.0, 0.0]], [[0.0, 0.0]]), 6)
        0.0
    """
    a, b = _pair(base_logits, comp_logits, "logits")
    n, k = a.shape
    if n == 0:
        return V.warn_undefined("js_from_logits is undefined for 0 samples; returning NaN")
    total = 0.0
    for rows in row_blocks(n, k):
        za, pa, sa, lse_a = _exp_logits(a[rows])
        zb, pb, sb, lse_b = _exp_logits(b[rows])
        pa /= sa[:, None]
        pb /= sb[:, None]
        # sum_k p ln(p / m) = sum_k p z - lse - sum_k p ln m, m = (p_a + p_b) / 2; ln m is clamped at 2.2e-308 only
        # where both probabilities underflow, and there the terms are 0 * finite = 0
        js = np.einsum("ij,ij->i", pa, za) - lse_a + np.einsum("ij,ij->i", pb, zb) - lse_b
        both = np.add(pa, pb, out=pa)
        lm = np.log(np.maximum(0.5 * both, V.TINY))
        js -= np.einsum("ij,ij->i", both, lm)
        total += float(np.maximum(0.5 * js, 0.0).sum())
    return total / n
