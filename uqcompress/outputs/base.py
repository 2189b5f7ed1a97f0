"""What a source of stored outputs hands the pipeline: per-split :class:`Outputs` of both models, and all questions.

A source (``outputs=lm_eval``, ``outputs=arrays``, :func:`uqcompress.evaluate_outputs`) reads outputs of runs made
elsewhere and builds a :class:`StoredOutputs` with :func:`from_arrays`; the pipeline then scores, selects and measures
them exactly as it does outputs it computed itself (:func:`uqcompress.pipeline.evaluate_stored`).

Example:
    >>> import numpy as np
    >>> from uqcompress.outputs.base import from_arrays
    >>> rng = np.random.default_rng(0)
    >>> z = rng.normal(size=(20, 3)); y = rng.integers(0, 3, 20)
    >>> s = from_arrays(z, z + 0.1, y, split=np.array(["calibration", "test"] * 10))
    >>> len(s.baseline["calibration"]), len(s.compressed["test"]), s.views[""].labels.shape
    (10, 10, (20,))
"""
from __future__ import annotations

import logging
import zlib
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Sequence

import numpy as np
import torch

from uqcompress.data.base import stratified_split
from uqcompress.metrics import _validate as V
from uqcompress.uncertainty.base import Outputs

if TYPE_CHECKING:  # only the readers that build row tables import pandas: a model run does not need it to start
    import pandas as pd

log = logging.getLogger(__name__)

SPLITS = ("calibration", "test")
#: split names a ``split`` array may hold, and what they mean here (fit rows have no use without a model)
SPLIT_ALIASES = {"calibration": "calibration", "validation": "calibration", "val": "calibration",
                 "test": "test", "ood": "ood", "fit": "fit", "train": "fit"}
DEFAULT_FRACTIONS = {"calibration": 0.5, "test": 0.5}


@dataclass
class Scores:
    """Every labelled in-distribution question of a run, in one order, for the whole-run keys (``all.*``, ``task.*``).

    Attributes:
        baseline, compressed: (N, K) float64 option scores used as logits (softmax gives the probabilities).
        labels: (N,) int64 answers.
        group: (N,) int64 index into ``group_names`` (a task per question), or None for one group.
        group_names: names of the groups (lm-eval task names).
    """

    baseline: np.ndarray
    compressed: np.ndarray
    labels: np.ndarray
    group: np.ndarray | None = None
    group_names: list[str] = field(default_factory=list)


@dataclass
class StoredOutputs:
    """Outputs of a baseline and a compressed model made elsewhere.

    Attributes:
        baseline, compressed: :class:`Outputs` per split (``calibration``, ``test`` and, when given, ``ood``).
        rows: per split, columns that identify each row in ``predictions.csv`` (``task``, ``doc_id``; ``row``).
        views: :class:`Scores` of all labelled in-distribution rows, keyed by the suffix of their ``all.*`` /
            ``task.*`` keys: ``""`` (the scores the pipeline uses; for lm-eval the summed log-likelihood, lm-eval's
            ``acc``) and, for lm-eval, ``"_norm"`` (per character, lm-eval's ``acc_norm``).
        facts: scalars for ``results.json`` (the source, its paths, options, counts).
    """

    baseline: dict[str, Outputs]
    compressed: dict[str, Outputs]
    rows: dict[str, pd.DataFrame] = field(default_factory=dict)
    views: dict[str, Scores] = field(default_factory=dict)
    facts: dict[str, Any] = field(default_factory=dict)


def check_fractions(fractions: dict | None, option: str = "outputs.splits") -> dict[str, float]:
    """``{calibration: c, test: t}`` with c, t > 0 summing to 1; a one-line error otherwise.

    >>> check_fractions({"calibration": 0.3, "test": 0.7})
    {'calibration': 0.3, 'test': 0.7}
    """
    fr = dict(fractions or DEFAULT_FRACTIONS)
    if set(fr) != set(SPLITS):
        raise ValueError(f"{option}={fr} must name exactly calibration and test (e.g. {{calibration: 0.5, test: 0.5}})")
    try:
        fr = {k: float(fr[k]) for k in SPLITS}
    except (TypeError, ValueError):
        raise ValueError(f"{option}={fr} must hold numbers") from None
    if min(fr.values()) <= 0 or abs(sum(fr.values()) - 1.0) > 1e-6:
        raise ValueError(f"{option}={fr}: both fractions must be > 0 and sum to 1")
    return fr


def group_seed(seed: int, group: str) -> int:
    """A split seed for one group (task) from the run's seed and the group's name: adding or removing a task never
    reshuffles another (``hash`` is salted per process, crc32 is not).

    >>> group_seed(0, "arc_easy") == group_seed(0, "arc_easy") != group_seed(1, "arc_easy")
    True
    """
    return zlib.crc32(f"{int(seed)}\x00{group}".encode())


def split_rows(labels: np.ndarray, fractions: dict[str, float], seed: int) -> np.ndarray:
    """Split name per row: stratified by label and seeded (:func:`uqcompress.data.base.stratified_split`)."""
    parts = stratified_split(labels, fractions, seed)
    names = np.empty(len(labels), dtype=object)
    for k, idx in parts.items():
        names[idx] = k
    return names


def split_names(values: Sequence[Any], source: str) -> np.ndarray:
    """A ``split`` array as calibration / test / ood / fit per row; a one-line error naming a value it cannot read."""
    arr = np.asarray(values)
    if arr.ndim != 1:
        raise ValueError(f"{source}: split must be one value per row, got shape {arr.shape}")
    uniq, inv = np.unique(arr.astype(str), return_inverse=True)
    mapped = []
    for u in uniq:
        key = u.strip().lower()
        if key not in SPLIT_ALIASES:
            raise ValueError(f"{source}: value {str(u)!r} (row {int(np.flatnonzero(arr.astype(str) == u)[0])}) is "
                             "not one of: calibration (validation, val), test, ood")
        mapped.append(SPLIT_ALIASES[key])
    return np.asarray(mapped, dtype=object)[inv]


def _labels_in_range(y: np.ndarray, rows: np.ndarray, k: int, name: str, like: str) -> np.ndarray:
    """``y[rows]`` as int64 class ids in [0, k); a one-line error naming the first bad row of the file."""
    yr = y[rows]
    if yr.dtype.kind == "f" and np.all(np.isfinite(yr)) and np.all(yr == np.round(yr)):
        yr = yr.astype(np.int64)
    if yr.dtype.kind not in "iu":
        raise ValueError(f"{name} must be integer class ids, got {yr.dtype} values such as {yr.ravel()[:1].tolist()}")
    bad = np.flatnonzero((yr < 0) | (yr >= k))
    if len(bad):
        i = int(rows[bad[0]])
        raise ValueError(f"{name} has value {y[i]} at row {i}, outside [0, {k}): {like} has {k} classes")
    return yr.astype(np.int64)


def as_logits(x: Any, kind: str, name: str) -> np.ndarray:
    """(N, K) float64 logits from ``x`` holding ``kind`` = logits or probs (checked: finite; probability rows >= 0
    summing to 1 within 1e-3). ln of a zero probability is ln(2.2e-308) = -708.4, finite, as in
    :func:`uqcompress.metrics.kl_divergence`."""
    if kind == "probs":
        p = V.probs(x, name).astype(np.float64)
        return np.log(np.maximum(p, V.TINY))
    if kind == "logits":
        return V.logits(x, name).astype(np.float64)
    raise ValueError(f"{name}: kind must be logits or probs, got {kind!r}")


def from_arrays(baseline: np.ndarray, compressed: np.ndarray, labels: Any, *, split: Any = None,
                fractions: dict[str, float] | None = None, seed: int = 0, names: tuple[str, str] = ("baseline",
                "compressed"), rows: pd.DataFrame | None = None, group: np.ndarray | None = None,
                group_names: Sequence[str] = (), views: dict[str, tuple[np.ndarray, np.ndarray]] | None = None,
                facts: dict[str, Any] | None = None, labels_name: str = "labels") -> StoredOutputs:
    """Build :class:`StoredOutputs` from (N, K) logits of both models on the same rows.

    Args:
        baseline, compressed: (N, K) finite logits (see :func:`as_logits` for probabilities), same shape.
        labels: (N,) class ids in [0, K) on in-distribution rows; OOD rows may hold -1 (unlabelled) or, all of
            them, a class id (a labelled shift: ``shift_accuracy`` is then reported).
        split: (N,) calibration | test | ood | fit per row; None = a seeded split of all rows by ``fractions``,
            stratified by label (per group when ``group`` is given, each with its own :func:`group_seed`).
        names: how the two sources are named in error messages (the option names, e.g. ``outputs.baseline``).
        rows: optional per-row identifying columns (N rows) copied into ``predictions.csv``.
        group, group_names: optional group (task) index per row.
        views: scorings of the same rows as (baseline, compressed) logits by key suffix (see
            :class:`StoredOutputs`); default ``{"": (baseline, compressed)}``.
        facts: scalars for ``results.json``.
        labels_name: how ``labels`` (and ``split``) are named in error messages.
    """
    nb, nc = names
    if baseline.shape != compressed.shape:
        raise ValueError(f"{nc} has shape {tuple(compressed.shape)} but {nb} has shape {tuple(baseline.shape)}: "
                         "the two must hold the same rows (and classes) in the same order")
    n, k = baseline.shape
    if n == 0:
        raise ValueError(f"{nb} has no rows")
    ln = labels_name
    y_all = V.to_numpy(labels, ln)
    if y_all.ndim != 1 or y_all.shape[0] != n:
        raise ValueError(f"{ln} has shape {tuple(y_all.shape)} but {nb} has {n} rows")
    if split is None:
        names_split = np.empty(n, dtype=object)
        fr = check_fractions(fractions)
        if group is None:
            names_split[:] = split_rows(_labels_in_range(y_all, np.arange(n), k, ln, nb), fr, seed)
        else:
            for g, gname in enumerate(group_names):
                idx = np.flatnonzero(group == g)
                names_split[idx] = split_rows(_labels_in_range(y_all, idx, k, ln, nb), fr, group_seed(seed, gname))
    else:
        names_split = split_names(split, f"{nb} split" if nb != "baseline" else "split")
        if names_split.shape[0] != n:
            raise ValueError(f"split has {names_split.shape[0]} values but {nb} has {n} rows")
    idx = {s: np.flatnonzero(names_split == s) for s in ("calibration", "test", "ood", "fit")}
    if len(idx["fit"]):
        log.info("%d rows of split 'fit' are not used: no scorer that works from stored outputs fits on them",
                 len(idx["fit"]))
    for s in SPLITS:
        if len(idx[s]) == 0:
            raise ValueError(f"no {s} rows: the split leaves the {s} split empty ({n} rows in all); "
                             "add rows or change the split")
    in_dist = np.concatenate([idx["calibration"], idx["test"]])
    in_dist.sort()
    y_id = _labels_in_range(y_all, in_dist, k, ln, nb)
    y = np.full(n, -1, dtype=np.int64)
    y[in_dist] = y_id
    ood_y = None
    if len(idx["ood"]):
        yo = y_all[idx["ood"]]
        if yo.dtype.kind in "iuf" and np.all((yo >= 0) & (yo < k)) and np.all(yo == np.round(yo)):
            ood_y = yo.astype(np.int64)  # labelled covariate shift
    bt, ct = torch.from_numpy(np.ascontiguousarray(baseline)), torch.from_numpy(np.ascontiguousarray(compressed))
    base_out, comp_out, row_info = {}, {}, {}
    for s in ("calibration", "test", "ood"):
        ix = idx[s]
        if len(ix) == 0:
            continue
        ys = None if s == "ood" and ood_y is None else torch.from_numpy(ood_y if s == "ood" else y[ix])
        ti = torch.from_numpy(ix)
        base_out[s] = Outputs(bt.index_select(0, ti), ys)
        comp_out[s] = Outputs(ct.index_select(0, ti), ys)
        if rows is not None:
            row_info[s] = rows.iloc[ix].reset_index(drop=True)
    g = None if group is None else np.asarray(group)[in_dist]
    all_views = {suffix: Scores(b[in_dist], c[in_dist], y[in_dist], g, list(group_names))
                 for suffix, (b, c) in (views or {"": (baseline, compressed)}).items()}
    return StoredOutputs(base_out, comp_out, row_info, all_views, dict(facts or {}))
