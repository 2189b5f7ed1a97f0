"""Fast vectorised building blocks shared by several metrics (no validation here: callers validate first).

Speed notes (measured on 2 cores, 1M rows; see scripts/bench_metrics.py):
- ``torch.max(dim=1)`` returns max and argmax in one fused pass: on an idle 2-core machine ~2x faster than numpy's
  ``argmax`` alone (its two threads; single-threaded both cost ~27 ms per 1M x 10 float32), so it is used only
  for large inputs while a core is idle (see :func:`top1`).
- Ranking two score sets (ID vs OOD, correct vs wrong) sorts each set with numpy's SIMD sort and then merges the two
  sorted runs with a stable argsort, which timsort does in linear time; that is ~2x faster than one argsort of the
  concatenation and gives tie groups for free.
- No BLAS for row sums and inner products (einsum instead): OpenBLAS's thread hand-off costs more than the work.
- Row-wise float64 work on (N, K) matrices runs in row blocks of ~128k elements so temporaries stay in cache and
  memory stays bounded for large K.
"""
from __future__ import annotations

import os
from typing import Iterator

import numpy as np
import torch

BLOCK_ELEMS = 1 << 17  # elements per row block of (N, K) float64 work (1 MiB)
TORCH_MIN_ELEMS = 1 << 20  # torch's threaded max pays off from ~1M elements, and only with an idle core


def _idle_core() -> bool:
    """Whether a core besides ours is free: 1-minute load average (which counts this process) below cores - 0.5.
    On an oversubscribed machine an OpenMP parallel region can wait a scheduler tick (~16 ms) for its second thread,
    100x the work at 10k rows."""
    try:
        return os.getloadavg()[0] < (os.cpu_count() or 1) - 0.5
    except (AttributeError, OSError):  # no load average on this platform
        return True


def _use_torch(p: np.ndarray) -> bool:
    fast_dtype = p.dtype in (np.float32, np.float64)
    return p.size >= TORCH_MIN_ELEMS and fast_dtype and p.flags.writeable and p.flags.c_contiguous and _idle_core()


def top1(p: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Max probability and argmax per row of a (N, K) array; the first index wins ties, like ``np.argmax``.

    Both paths give identical results; torch's fused max-with-indices runs on two threads (~2x numpy's single-thread
    argmax on 1M x 10 on an idle 2-core machine), numpy is used for small inputs and on a busy machine.
    """
    if _use_torch(p):
        v, i = torch.from_numpy(p).max(dim=1)
        return v.numpy(), i.numpy()
    i = p.argmax(axis=1)
    return np.take_along_axis(p, i[:, None], axis=1)[:, 0], i


def row_sums_and_min(p: np.ndarray) -> tuple[np.ndarray, float]:
    """Row sums (in the input's float dtype, NaN/inf propagate) and the global minimum of a (N, K) float array:
    the two reductions input validation needs. Threaded torch reductions for large inputs with an idle core
    (~4 ms per 1M x 10 float32 on 2 cores vs ~6 ms single-threaded numpy)."""
    if _use_torch(p):
        t = torch.from_numpy(p)
        return t.sum(dim=1).numpy(), float(t.min())
    with np.errstate(over="ignore", invalid="ignore"):
        return np.einsum("ij->i", p), float(p.min())


def argmax_rows(p: np.ndarray) -> np.ndarray:
    """The argmax of :func:`top1` alone (skips gathering the max on the numpy path)."""
    return top1(p)[1] if _use_torch(p) else p.argmax(axis=1)


def dot(a: np.ndarray, b: np.ndarray) -> np.number:
    """Inner product of two 1-D arrays without BLAS (int64 inputs stay exact integers).

    A multithreaded BLAS ``ddot`` costs milliseconds of thread hand-off on a busy 2-core machine for work that
    einsum's single-threaded loop does in microseconds.
    """
    return np.einsum("i,i->", a, b)


def row_blocks(n_rows: int, n_cols: int) -> Iterator[slice]:
    """Slices of consecutive rows holding about ``BLOCK_ELEMS`` elements each."""
    step = max(1, BLOCK_ELEMS // max(1, n_cols))
    for start in range(0, n_rows, step):
        yield slice(start, min(start + step, n_rows))


GROUP_BLOCK = 1 << 16  # merged positions per block: block temporaries stay in cache and reuse heap memory


def merged_cumcount_blocks(a: np.ndarray, b: np.ndarray) -> Iterator[tuple[np.ndarray, np.ndarray, np.ndarray]]:
    """Distinct values of ``a`` and ``b`` together, ascending, with cumulative counts, block by block.

    Yields ``(values, cum_a, cum_b)`` for consecutive runs of distinct values, where ``cum_a[j]`` = #{a <= values[j]}
    and ``cum_b[j]`` = #{b <= values[j]} (int64). Equal values form one group, so everything derived from these
    counts is independent of input order. Working in blocks keeps every temporary small: on 1M + 1M scores the
    group-level arithmetic of the callers is ~4x cheaper than on whole arrays (fewer page faults, cache-resident).
    """
    sa = np.sort(a)
    sb = np.sort(b)
    if sa.dtype != sb.dtype:
        dt = np.promote_types(sa.dtype, sb.dtype)
        sa, sb = sa.astype(dt), sb.astype(dt)
    merged = np.concatenate([sa, sb])
    n, n_a = merged.size, sa.size
    order = np.argsort(merged, kind="stable")  # two sorted runs: timsort merges them in O(n)
    carry_b = 0
    for start in range(0, n, GROUP_BLOCK):
        stop = min(start + GROUP_BLOCK, n)
        idx = order[start:stop]
        vals = merged[idx]
        last = np.empty(stop - start, dtype=bool)  # last element of its group of equal values
        np.not_equal(vals[1:], vals[:-1], out=last[:-1])
        last[-1] = stop == n or vals[-1] != merged[order[stop]]
        ends = np.flatnonzero(last)
        cum_b = np.cumsum(idx >= n_a)
        block_b = int(cum_b[-1])
        if ends.size:  # a block inside one long tie group ends no group
            cum_b = cum_b[ends]
            cum_b += carry_b
            yield vals[ends], start + 1 + ends - cum_b, cum_b
        carry_b += block_b


def bin_index(conf: np.ndarray, n_bins: int) -> np.ndarray:
    """Equal-width bin of each confidence in [0, 1]: bin k is [k/n, (k+1)/n), the last bin is closed [.., 1].

    Bins are defined by the edges ``np.linspace(0, 1, n_bins + 1)`` (as numpy's histogram, netcal and torchmetrics
    do); a multiply-and-floor guess is corrected against those edges so values on an edge land exactly as there.
    Values slightly above 1 (rows may sum to 1 + 1e-3) go to the last bin.
    """
    edges = np.linspace(0.0, 1.0, n_bins + 1)
    idx = (conf * n_bins).astype(np.intp)
    np.clip(idx, 0, n_bins - 1, out=idx)
    idx -= conf < edges[idx]
    idx += (conf >= edges[idx + 1]) & (idx < n_bins - 1)
    return idx
