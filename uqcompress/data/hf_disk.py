"""``data=hf_disk data.path=DIR``: a Hugging Face ``datasets`` folder written by ``save_to_disk`` (read offline).

Columns are named in the config: ``data.text_column`` (text data) or ``data.image_column`` (PIL images or arrays,
converted like ``data=image_folder``: ``data.channels``, ``data.image_size``), and ``data.label_column``; left
null, a ``text`` / ``sentence`` or else an ``image`` / ``img`` column is used. A
``ClassLabel`` label column gives the class names; string labels are mapped to ids in sorted order. A saved
``DatasetDict`` keeps its splits (train -> fit, validation -> calibration, test -> test; a missing calibration or
test split is carved from train by seed); a single ``Dataset`` is split like the other loaders (``data.splits``,
``data.split_column``). Needs ``pip install datasets``.

Example:
    >>> from uqcompress.data import load_dataset
    >>> load_dataset({"name": "hf_disk", "path": "reviews_ds", "text_column": "text"}, seed=0)  # doctest: +SKIP
"""
from __future__ import annotations

from typing import Any

import numpy as np
import torch

from uqcompress.data import DATASETS, declare
from uqcompress.data.base import DataBundle, count, flag
from uqcompress.data.generic import SPLIT_ALIASES, build_bundle, encode_labels, is_ood, split_names, user_path
from uqcompress.data.image_folder import image_channels, image_to_array, parse_channels, parse_size, resize_chw


def import_datasets() -> Any:
    """The ``datasets`` package, or a one-line ModuleNotFoundError saying how to install it."""
    try:
        import datasets
    except ImportError:
        raise ModuleNotFoundError("data=hf_disk needs the 'datasets' package; install it with: pip install datasets"
                                  " (or in the uqcompress clone: .venv/bin/pip install -e '.[hf]')") from None
    return datasets


def _images(values: list[Any], cfg: dict, source: str, column: str) -> torch.Tensor:
    """An image column (PIL images or nested lists / arrays) as float32 (N, C, H, W) in [0, 1]."""
    channels, size = parse_channels(cfg.get("channels")), parse_size(cfg.get("image_size"))
    where = "ood" if is_ood(cfg) else "data"
    arrays, first = [], None
    for i, v in enumerate(values):
        if hasattr(v, "mode") and hasattr(v, "convert"):  # PIL image (datasets.Image feature)
            c = image_channels(v)
            a = image_to_array(v, channels or c)
        else:
            from uqcompress.data.npz import to_nchw, to_unit_float

            a = to_unit_float(to_nchw(np.asarray(v)[None], f"{source} row {i}"), source).numpy()[0]
            if channels and a.shape[0] != channels:
                a = np.repeat(a, 3, 0) if channels == 3 else a.mean(0, keepdims=True)
        if first is None:
            first = (a.shape, i)
        elif channels is None and a.shape[0] != first[0][0]:
            raise ValueError(f"{source}: row {i} of '{column}' has {a.shape[0]} channel(s) but row {first[1]} has "
                             f"{first[0][0]}; set {where}.channels=1 or {where}.channels=3")
        if size is not None:
            a = resize_chw(a, size)
        elif a.shape[1:] != first[0][1:]:
            raise ValueError(f"{source}: row {i} of '{column}' is {a.shape[2]}x{a.shape[1]} but row {first[1]} is "
                             f"{first[0][2]}x{first[0][1]}; set {where}.image_size to resize all")
        arrays.append(a)
    return torch.from_numpy(np.stack(arrays).astype(np.float32))


@DATASETS.register("hf_disk")
@declare(None, path=None, text_column=None, image_column=None, label_column=None, split_column=None,
         splits=None, channels=None, image_size=None, class_names=None, num_classes=count, as_ood=flag)
def load_hf_disk(cfg: dict, seed: int) -> DataBundle:
    path = user_path(cfg, "hf_disk", "DIR")
    datasets = import_datasets()
    source = str(path)
    try:
        loaded = datasets.load_from_disk(source)
    except (FileNotFoundError, ValueError, OSError) as e:
        raise ValueError(f"{source}: not a datasets.save_to_disk folder ({type(e).__name__}: "
                         f"{str(e).splitlines()[0][:150]})") from None
    if hasattr(loaded, "column_names") and isinstance(loaded.column_names, dict):  # DatasetDict
        unknown = [s for s in loaded if s.lower() not in SPLIT_ALIASES]
        if unknown:
            raise ValueError(f"{source}: split '{unknown[0]}' is not one of: train|fit, validation|val|calibration, "
                             "test")
        names = list(loaded)
        parts = [loaded[s] for s in names]
        given = np.asarray([SPLIT_ALIASES[s.lower()] for s, p in zip(names, parts) for _ in range(len(p))], dtype=object)
    else:
        parts, given = [loaded], None
    columns = list(parts[0].column_names)
    n = sum(len(p) for p in parts)
    if n == 0:
        raise ValueError(f"{source}: the data set has no rows")

    def column(name: str, what: str) -> list[Any]:
        """One column over all splits, as a list (datasets may return lazy column objects)."""
        for p in parts:
            if name not in p.column_names:
                raise ValueError(f"{source}: no column '{name}' (data.{what}); it has: {', '.join(p.column_names)}")
        return [v for p in parts for v in p[name]]

    text_col, image_col = cfg.get("text_column"), cfg.get("image_column")
    if not text_col and not image_col:  # the usual names
        text_col = next((c for c in ("text", "sentence") if c in columns), None)
        image_col = None if text_col else next((c for c in ("image", "img") if c in columns), None)
    if bool(text_col) == bool(image_col):
        raise ValueError(f"data=hf_disk needs exactly one of data.text_column, data.image_column (columns of "
                         f"{source}: {', '.join(columns)})")
    if text_col:
        x: Any = [str(t) if t is not None else "" for t in column(text_col, "text_column")]
        modality = "text"
    else:
        x, modality = _images(column(image_col, "image_column"), cfg, source, image_col), "image"
    label_col = cfg.get("label_column", "label")
    y = mapping = None
    class_names = list(cfg.get("class_names") or []) or None
    if label_col and (label_col in columns or not is_ood(cfg)):
        values = column(label_col, "label_column")
        feature = parts[0].features[label_col]
        class_label = hasattr(feature, "names") and hasattr(feature, "str2int")  # ClassLabel: ids + names
        if class_label and class_names is None:
            class_names = list(feature.names)
        y, names, mapping = encode_labels(np.asarray(values), source, label_col,
                                          order=None if class_label else class_names)
        class_names = class_names or names
    elif not is_ood(cfg):
        raise ValueError(f"data=hf_disk needs data.label_column (columns of {source}: {', '.join(columns)})")
    if cfg.get("split_column"):
        col = cfg["split_column"]
        given = split_names(column(col, "split_column"), source, col)
    return build_bundle("hf_disk", source, modality, x, y, cfg, seed, given_splits=given, class_names=class_names,
                        label_mapping=mapping, info={"source": f"datasets folder {source} ({n} rows)"})
