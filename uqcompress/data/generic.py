"""Shared helpers of the bring-your-own-data loaders (``image_folder``, ``npz``, ``csv``, ``hf_disk``).

They turn "a path, some inputs, some labels, maybe a split column" into a :class:`DataBundle`:

* :func:`user_path` checks ``data.path`` (one-line errors for a missing or absent path);
* :func:`encode_labels` keeps integer labels as ids and maps string labels to ids in sorted order;
* :func:`split_names` maps a split column (``train``/``val``/...) to ``fit``/``calibration``/``test``;
* :func:`build_bundle` makes the ID bundle (given splits completed by a seeded stratified split) or, with
  ``as_ood: true``, an OOD bundle whose ``test`` split is the whole data.

Example:
    >>> import torch
    >>> from uqcompress.data.generic import build_bundle, encode_labels
    >>> y, names, mapping = encode_labels(["pos", "neg", "pos", "neg"] * 5, "reviews.csv")
    >>> y[:4].tolist(), names, mapping
    ([1, 0, 1, 0], ['neg', 'pos'], {'neg': 0, 'pos': 1})
    >>> d = build_bundle("csv", "reviews.csv", "text", [f"t{i}" for i in range(20)], y, {}, seed=0,
    ...                  class_names=names, label_mapping=mapping)
    >>> {k: len(s) for k, s in d.splits.items()}, d.info["label_mapping"]
    ({'fit': 12, 'calibration': 4, 'test': 4}, {'neg': 0, 'pos': 1})
"""
from __future__ import annotations

from pathlib import Path
from typing import Any, Sequence

import numpy as np
import torch

from uqcompress.data.base import DataBundle, Split, stratified_split

DEFAULT_FRACTIONS = {"fit": 0.6, "calibration": 0.2, "test": 0.2}

#: split-column values (lower-cased) -> pipeline split names
SPLIT_ALIASES = {
    "fit": "fit", "train": "fit", "training": "fit",
    "calibration": "calibration", "calib": "calibration", "cal": "calibration", "validation": "calibration",
    "valid": "calibration", "val": "calibration", "dev": "calibration",
    "test": "test", "testing": "test",
}


def user_path(cfg: dict, kind: str, what: str = "FILE") -> Path:
    """``cfg['path']`` as an existing path; one-line errors when it is unset or does not exist."""
    raw = cfg.get("path")
    if raw in (None, "", "???"):
        raise ValueError(f"data={kind} needs a path: add data.path={what} (or ood.path={what})")
    path = Path(str(raw)).expanduser()
    if not path.exists():
        raise FileNotFoundError(f"data={kind}: path '{path}' does not exist")
    return path


def is_ood(cfg: dict) -> bool:
    """True when the loader is asked for an OOD set (``as_ood: true``, set by ``conf/ood/*.yaml``)."""
    return bool(cfg.get("as_ood", False))


def encode_labels(values: Sequence[Any] | np.ndarray, source: str, column: str = "label",
                  order: Sequence[str] | None = None) -> tuple[torch.Tensor, list[str] | None, dict[str, int] | None]:
    """Labels -> (int64 ids, class names or None, {original label: id} or None).

    Integer labels (or floats that are whole numbers) are used as ids and must be >= 0. Anything else (strings,
    booleans) is mapped to ids in sorted order (or in the order of ``order``, e.g. ``data.class_names``), and the
    mapping is returned so it can be reported.
    """
    arr = np.asarray(values)
    if arr.ndim != 1:
        raise ValueError(f"{source}: labels '{column}' must be one value per sample, got shape {arr.shape}")
    if arr.dtype.kind in "iu" or (arr.dtype.kind == "f" and np.all(np.isfinite(arr)) and np.all(arr == np.round(arr))):
        ids = arr.astype(np.int64)
        if len(ids) and ids.min() < 0:
            bad = int(np.flatnonzero(ids < 0)[0])
            raise ValueError(f"{source}: label {int(ids[bad])} (sample {bad}) in '{column}' is negative; "
                             "labels must be ids >= 0 or strings")
        return torch.as_tensor(ids), None, None
    if arr.dtype.kind == "f":
        bad = int(np.flatnonzero(~np.isfinite(arr) | (arr != np.round(arr)))[0])
        raise ValueError(f"{source}: label {arr[bad]!r} (sample {bad}) in '{column}' is not a class id; "
                         "labels must be integer ids or strings")
    labels = [v.decode() if isinstance(v, bytes) else v for v in arr.tolist()]
    for i, v in enumerate(labels):
        if v is None or (isinstance(v, float) and np.isnan(v)) or (isinstance(v, str) and not v.strip()):
            raise ValueError(f"{source}: sample {i} has an empty label in '{column}'")
    keys = [str(v) for v in labels]
    names = [str(n) for n in order] if order else sorted(set(keys))
    unknown = sorted(set(keys) - set(names))
    if unknown:
        raise ValueError(f"{source}: label {unknown[0]!r} in '{column}' is not one of the class names: {', '.join(names)}")
    mapping = {n: i for i, n in enumerate(names)}
    return torch.as_tensor([mapping[k] for k in keys], dtype=torch.long), names, mapping


def split_names(values: Sequence[Any], source: str, column: str = "split") -> np.ndarray:
    """Map a split column to ``fit`` / ``calibration`` / ``test`` (train -> fit, validation|val -> calibration)."""
    out = []
    for i, v in enumerate(values):
        key = (v.decode() if isinstance(v, bytes) else str(v)).strip().lower()
        if key not in SPLIT_ALIASES:
            raise ValueError(f"{source}: split value {v!r} (sample {i}) in '{column}' is not one of: "
                             "fit|train, calibration|validation|val, test")
        out.append(SPLIT_ALIASES[key])
    return np.asarray(out, dtype=object)


def _fractions(cfg: dict) -> dict[str, float]:
    fr = dict(cfg.get("splits") or DEFAULT_FRACTIONS)
    unknown = set(fr) - set(DEFAULT_FRACTIONS)
    if unknown:
        raise ValueError(f"data.splits has unknown split(s) {sorted(unknown)}; use: fit, calibration, test")
    return {k: float(v) for k, v in fr.items() if float(v) > 0}


def assign_splits(y: torch.Tensor, given: np.ndarray | None, fractions: dict[str, float], seed: int,
                  source: str) -> dict[str, np.ndarray]:
    """Indices per split. ``given`` (split name per sample, or None) is respected; a missing calibration or test
    split is carved out of the fit pool (stratified, by ``seed``) with ``fractions`` renormalised over the
    fit pool's share."""
    if given is None:
        return {s: idx for s, idx in stratified_split(y, fractions, seed).items() if len(idx)}
    parts = {s: np.flatnonzero(given == s) for s in ("fit", "calibration", "test")}
    missing = [s for s in ("calibration", "test") if not len(parts[s])]
    if missing:
        pool = parts["fit"]
        if not len(pool):
            raise ValueError(f"{source}: the split column gives no '{missing[0]}' rows and no fit/train rows to "
                             f"carve it from")
        want = {s: fractions.get(s, DEFAULT_FRACTIONS[s]) for s in ["fit", *missing]}
        total = sum(want.values())
        sub = stratified_split(y[pool], {s: v / total for s, v in want.items()}, seed)
        for s, idx in sub.items():
            parts[s] = pool[idx]
    return {s: idx for s, idx in parts.items() if len(idx)}


def build_bundle(
    kind: str,
    source: str,
    modality: str,
    x: Any,
    y: torch.Tensor | None,
    cfg: dict,
    seed: int,
    *,
    given_splits: np.ndarray | None = None,
    class_names: list[str] | None = None,
    label_mapping: dict[str, int] | None = None,
    info: dict[str, Any] | None = None,
    sources: list[str] | None = None,
) -> DataBundle:
    """The :class:`DataBundle` of one loaded pool of samples (``sources``: each sample's file, for reports).

    With ``as_ood: true`` the whole pool is the ``test`` split (labels kept if present, never required).
    Otherwise labels are required; ``data.num_classes`` / ``class_names`` fix the label space (labels outside it
    are refused naming ``source``) and splits come from ``given_splits`` or a seeded stratified split.
    """
    info = {"path": source, **(info or {})}
    if label_mapping is not None:
        info["label_mapping"] = label_mapping
    k = cfg.get("num_classes") or (len(class_names) if class_names else None)
    if y is not None and len(y) != len(x):
        raise ValueError(f"{source}: {len(x)} inputs but {len(y)} labels")
    if y is not None and len(y):
        top = int(y.max())
        if k is None:
            k = top + 1
        elif top >= int(k):
            where = "data.num_classes" if cfg.get("num_classes") else f"its {len(class_names or [])} class names"
            raise ValueError(f"{source}: label {top} is outside the {int(k)} classes given by {where}")
    if k is not None:
        k = int(k)
        class_names = list(class_names or [str(i) for i in range(k)])
    if is_ood(cfg):
        return DataBundle(source, modality, k, {"test": Split(x, y, sources)}, class_names or [], info)
    if y is None:
        raise ValueError(f"{source}: no labels found; labels are needed unless the data is used as ood=")
    parts = assign_splits(y, given_splits, _fractions(cfg), seed, source)
    for s in ("calibration", "test"):
        if s not in parts:
            raise ValueError(f"{source}: too few samples for a '{s}' split ({len(y)} in all); "
                             "add samples or change data.splits")
    whole = Split(x, y, sources)
    return DataBundle(source, modality, k, {s: whole.subset(idx) for s, idx in parts.items()},
                      class_names or [], info)


__all__ = ["DEFAULT_FRACTIONS", "SPLIT_ALIASES", "assign_splits", "build_bundle", "encode_labels", "is_ood",
           "split_names", "user_path"]
