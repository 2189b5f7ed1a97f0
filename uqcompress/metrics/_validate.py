"""Input checks and conversions shared by every metric, in one place.

Every public metric passes its arguments through these helpers, so an input problem always reads the same way:
a one-line ``ValueError`` naming the argument and the offending shape or value, e.g.
``ValueError: probs has NaN at row 17`` or ``ValueError: labels has value 12 outside [0, 10)``.

Dtype policy: torch tensors (any device, with or without grad) and numpy arrays are accepted. Floating inputs keep
their precision (float16 / bfloat16 are widened to float32, which is exact); every sum, mean and ratio is then
accumulated in float64 by the metric, whatever the input dtype.

Undefined results (nothing abstained, no errors, an empty OOD split, ...) are NaN plus an
:class:`UndefinedMetricWarning` (see :func:`warn_undefined`), never a crash and never a silent 0.
"""
from __future__ import annotations

import warnings
from typing import Any

import numpy as np
import torch

from ._kernels import row_sums_and_min

ROW_SUM_TOL = 1e-3  # |sum_k p_k - 1| allowed per row of float32 / float64 probabilities
#: rows stored in a low-precision dtype may be off by more: ``LOW_PRECISION_ULPS * finfo(dtype).eps`` (see
#: :func:`row_sum_tolerance`)
LOW_PRECISION_ULPS = 2.0
TINY = float(np.finfo(np.float64).tiny)  # smallest positive normal float64, the clamp for log(0)

ArrayLike = Any  # numpy array, torch tensor, or a nested sequence of numbers


class UndefinedMetricWarning(UserWarning):
    """A metric is undefined for this input (e.g. no abstentions) and was returned as NaN."""


def warn_undefined(message: str) -> float:
    """Warn that a metric is undefined and return NaN.

    Python's default warning filter shows a given message once per call site, so a loop over runs is not flooded;
    callers emit each message at most once per metric call.
    """
    warnings.warn(message, UndefinedMetricWarning, stacklevel=3)
    return float("nan")


def to_numpy(x: ArrayLike, name: str) -> np.ndarray:
    """Convert a tensor / array / sequence to a numpy array without copying when possible (float16 -> float32)."""
    if isinstance(x, torch.Tensor):
        x = x.detach()
        if x.device.type != "cpu":
            x = x.cpu()
        if x.dtype in (torch.float16, torch.bfloat16):
            x = x.float()
        if x.is_complex():
            raise ValueError(f"{name} must be real; got dtype {x.dtype}")
        a = x.resolve_conj().resolve_neg().numpy()
    else:
        try:
            a = np.asarray(x)
        except (ValueError, TypeError) as e:  # ragged nested lists
            raise ValueError(f"{name} is not a rectangular array: {e}") from None
    if a.dtype == np.float16:
        a = a.astype(np.float32)
    if a.dtype.kind in "fiub" and not a.dtype.isnative:
        a = a.astype(a.dtype.newbyteorder("="))
    return a


def row_sum_tolerance(x: ArrayLike) -> float:
    """|row sum - 1| allowed for probabilities given as ``x``: :data:`ROW_SUM_TOL`, or ``2 * eps`` of a float16 /
    bfloat16 input when that is larger (bfloat16: 0.0156, float16: 0.00195).

    Why 2 eps and not K eps: rounding each stored probability to the dtype changes it by at most eps/2 of itself, so
    a row that summed to 1 before rounding sums to 1 within eps/2 after it, whatever K (the p_k sum to 1). A softmax
    normalised in that dtype (exp, sum, divide each rounded) adds a few more half-eps; 2 eps covers it. Measured: 200
    rows each of K = 2 ... 32,000 classes, logits scaled 0.1 ... 20, torch softmax in fp16 / bf16, a float32 softmax
    cast down, and exp / sum in the dtype: the largest |sum - 1| was 0.75 eps. float32 and float64 keep 1e-3.

    >>> import torch
    >>> row_sum_tolerance(torch.ones(1, 2, dtype=torch.bfloat16)), row_sum_tolerance(torch.ones(1, 2))
    (0.015625, 0.001)
    """
    if isinstance(x, torch.Tensor) and x.dtype in (torch.float16, torch.bfloat16):
        return max(ROW_SUM_TOL, LOW_PRECISION_ULPS * float(torch.finfo(x.dtype).eps))
    if isinstance(x, np.ndarray) and x.dtype == np.float16:
        return max(ROW_SUM_TOL, LOW_PRECISION_ULPS * float(np.finfo(np.float16).eps))
    return ROW_SUM_TOL


def _float(x: ArrayLike, name: str) -> np.ndarray:
    a = to_numpy(x, name)
    if a.dtype.kind == "f":
        return a
    if a.dtype.kind in "iub":
        return a.astype(np.float64)
    raise ValueError(f"{name} must hold real numbers; got dtype {a.dtype}")


def _first_nonfinite(a: np.ndarray, name: str, where: str) -> ValueError:
    """The error for the first NaN / inf in ``a`` (2-D: reported by row, 1-D: by index)."""
    bad = ~np.isfinite(a)
    flat = int(np.argmax(bad.reshape(-1)))
    pos = np.unravel_index(flat, a.shape)
    kind = "NaN" if np.isnan(a[pos]) else "inf"
    return ValueError(f"{name} has {kind} at {where} {int(pos[0])}")


def probs(x: ArrayLike, name: str = "probs") -> np.ndarray:
    """(N, K) class probabilities: finite, >= 0, rows summing to 1 within :func:`row_sum_tolerance` (1e-3; wider for
    float16 / bfloat16 rows). Returns a C-contiguous float32/float64 array (no copy when the input already is one)."""
    tol = row_sum_tolerance(x)
    dtype = f" for {str(x.dtype).replace('torch.', '')}" if tol != ROW_SUM_TOL else ""
    a = _float(x, name)
    if a.ndim != 2:
        raise ValueError(f"{name} must be 2-D (N, K); got shape {tuple(a.shape)}")
    if a.shape[1] == 0:
        raise ValueError(f"{name} has no classes: shape {tuple(a.shape)}")
    a = np.ascontiguousarray(a)
    if a.shape[0] == 0:
        return a
    # row sums and the minimum (threaded torch reductions on large inputs; einsum, not a BLAS gemv, otherwise);
    # a NaN/inf anywhere in a row makes its sum non-finite
    s, lowest = row_sums_and_min(a)
    if not np.isfinite(s).all():
        if not np.isfinite(a).all():
            raise _first_nonfinite(a, name, "row")
        # finite entries whose sum overflows: surely not a probability row
        row = int(np.argmax(~np.isfinite(s)))
        raise ValueError(f"{name} row {row} sums to {s[row]}, not 1 (tolerance {tol:g}{dtype})")
    if lowest < 0:
        row = int(np.argmax((a < 0).any(axis=1)))
        raise ValueError(f"{name} has negative value {float(a[row].min()):.6g} at row {row}")
    if s.max() > 1.0 + tol or s.min() < 1.0 - tol:
        row = int(np.argmax(np.abs(s.astype(np.float64) - 1.0) > tol))
        raise ValueError(f"{name} row {row} sums to {float(s[row]):.6g}, not 1 (tolerance {tol:g}{dtype})")
    return a


def logits(x: ArrayLike, name: str = "logits") -> np.ndarray:
    """(N, K) finite real scores (logits or log-probabilities). Returns a C-contiguous float array."""
    a = _float(x, name)
    if a.ndim != 2:
        raise ValueError(f"{name} must be 2-D (N, K); got shape {tuple(a.shape)}")
    if a.shape[1] == 0:
        raise ValueError(f"{name} has no classes: shape {tuple(a.shape)}")
    a = np.ascontiguousarray(a)
    # row sums are finite unless an entry is NaN/inf (or huge entries overflow: then check entry by entry)
    with np.errstate(over="ignore", invalid="ignore"):
        finite_rows = np.isfinite(np.einsum("ij->i", a)).all()
    if a.size and not finite_rows and not np.isfinite(a).all():
        raise _first_nonfinite(a, name, "row")
    return a


def _vector(a: np.ndarray, name: str, n: int | None, like: str) -> np.ndarray:
    """``a`` if it is 1-D and, when ``n`` is given, of length ``n`` (the length of argument ``like``)."""
    if a.ndim != 1:
        raise ValueError(f"{name} must be 1-D (N,); got shape {tuple(a.shape)}")
    if n is not None and a.shape[0] != n:
        raise ValueError(f"{name} has length {a.shape[0]} but {like} has length {n}")
    return a


def scores(x: ArrayLike, name: str, n: int | None = None, like: str = "") -> np.ndarray:
    """1-D finite real scores (e.g. confidence), optionally of length ``n`` (the length of argument ``like``)."""
    a = _vector(_float(x, name), name, n, like)
    if a.size and not np.isfinite(a).all():
        raise _first_nonfinite(a, name, "index")
    return a


def binary(x: ArrayLike, name: str, n: int | None = None, like: str = "") -> np.ndarray:
    """1-D boolean mask from bool or 0/1 values, optionally of length ``n``."""
    a = _vector(to_numpy(x, name), name, n, like)
    if a.dtype == np.bool_:
        return a
    if a.dtype.kind not in "iuf":
        raise ValueError(f"{name} must be bool or 0/1; got dtype {a.dtype}")
    bad = (a != 0) & (a != 1)  # NaN counts as bad
    if bad.any():
        i = int(np.argmax(bad))
        raise ValueError(f"{name} has value {a[i]} at index {i}; expected bool or 0/1")
    return a.astype(bool)


def labels(x: ArrayLike, name: str, n: int, k: int, like: str = "probs") -> np.ndarray:
    """1-D integer class labels in [0, k) of length ``n``; integral floats are accepted."""
    a = to_numpy(x, name)
    if a.ndim != 1:
        raise ValueError(f"{name} must be 1-D (N,); got shape {tuple(a.shape)}")
    if a.shape[0] != n:
        raise ValueError(f"{name} has length {a.shape[0]} but {like} has {n} rows")
    if a.dtype.kind == "b":
        a = a.astype(np.int64)
    elif a.dtype.kind == "f":
        bad = ~np.isfinite(a) | (a != np.round(a))
        if bad.any():
            i = int(np.argmax(bad))
            raise ValueError(f"{name} must be integers; got {a[i]} at index {i}")
        a = a.astype(np.int64)
    elif a.dtype.kind not in "iu":
        raise ValueError(f"{name} must be integers; got dtype {a.dtype}")
    if n and (a.min() < 0 or a.max() >= k):
        i = int(np.argmax((a < 0) | (a >= k)))
        raise ValueError(f"{name} has value {a[i]} outside [0, {k})")
    return a


def same_shape(a: np.ndarray, name_a: str, b: np.ndarray, name_b: str) -> None:
    if a.shape != b.shape:
        raise ValueError(f"{name_b} has shape {tuple(b.shape)} but {name_a} has shape {tuple(a.shape)}")

