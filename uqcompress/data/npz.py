"""``data=npz data.path=FILE``: images in a NumPy ``.npz`` (read with ``allow_pickle=False``).

Arrays (names configurable with ``data.x_key`` / ``data.y_key``):

* ``x``: uint8 (0-255) or float ([0, 1]) images, (N, H, W), (N, H, W, C) or (N, C, H, W) with C = 1 or 3
  (``data.layout`` auto | nhwc | nchw decides ambiguous shapes);
* ``y``: integer (or string) labels, optional for an OOD set;
* ``class_names`` (optional): names of the classes; ``data.class_names`` overrides it;
* a split array named by ``data.split_column`` (optional): train|val|test per sample.

Example:
    >>> import tempfile, numpy as np
    >>> from uqcompress.data import load_dataset
    >>> path = tempfile.mktemp(suffix=".npz")
    >>> rng = np.random.default_rng(0)
    >>> np.savez(path, x=rng.integers(0, 255, (30, 20, 24, 3), dtype=np.uint8), y=np.arange(30) % 3)
    >>> d = load_dataset({"name": "npz", "path": path}, seed=0)
    >>> d.image_shape, d.num_classes, len(d["test"])
    ((3, 20, 24), 3, 6)
"""
from __future__ import annotations

import logging
import zipfile

import numpy as np
import torch

from uqcompress.data import DATASETS, declare
from uqcompress.data.base import DataBundle, count, flag
from uqcompress.data.generic import build_bundle, encode_labels, is_ood, split_names, user_path

log = logging.getLogger(__name__)


def to_nchw(x: np.ndarray, source: str, layout: str = "auto") -> np.ndarray:
    """(N, H, W) / (N, H, W, C) / (N, C, H, W) with C in {1, 3} -> (N, C, H, W)."""
    if layout not in ("auto", "nhwc", "nchw"):
        raise ValueError(f"data.layout='{layout}' is not one of: auto, nhwc, nchw")
    if x.ndim == 3:
        return x[:, None]
    if x.ndim != 4:
        raise ValueError(f"{source}: x has shape {x.shape}; expected images (N, H, W), (N, H, W, C) or (N, C, H, W)")
    first, last = x.shape[1] in (1, 3), x.shape[3] in (1, 3)
    if layout == "auto":
        if first and last:
            raise ValueError(f"{source}: x shape {x.shape} could be NCHW or NHWC; set data.layout=nchw or nhwc")
        if not (first or last):
            raise ValueError(f"{source}: x has shape {x.shape}; images need 1 or 3 channels (NHWC or NCHW)")
        layout = "nchw" if first else "nhwc"
    if layout == "nhwc":
        x = x.transpose(0, 3, 1, 2)
    if x.shape[1] not in (1, 3):
        raise ValueError(f"{source}: x has {x.shape[1]} channels with data.layout={layout}; expected 1 or 3")
    return x


def to_unit_float(x: np.ndarray, source: str) -> torch.Tensor:
    """uint8 / integer images -> float32 [0, 1] (divided by 255, or 65535 for 16-bit); floats are kept."""
    if x.dtype == np.bool_:
        return torch.from_numpy(x.astype(np.float32))
    if x.dtype.kind in "iu":
        lo, hi = (int(x.min()), int(x.max())) if x.size else (0, 0)
        if lo < 0 or hi > 65535:
            raise ValueError(f"{source}: integer x has values in [{lo}, {hi}]; expected 0-255 (uint8) or 0-65535")
        scale = 255.0 if (x.dtype == np.uint8 or hi <= 255) else 65535.0
        return torch.from_numpy(np.ascontiguousarray(x, dtype=np.float32) / scale)
    if x.dtype.kind == "f":
        t = torch.from_numpy(np.ascontiguousarray(x, dtype=np.float32))
        if not torch.isfinite(t).all():
            raise ValueError(f"{source}: x contains NaN or inf")
        lo, hi = float(t.min()), float(t.max())
        if lo < -1e-6 or hi > 1 + 1e-6:
            log.warning("%s: float x spans [%.3g, %.3g], not [0, 1]; used as is (the model owns normalisation)",
                        source, lo, hi)
        return t
    raise ValueError(f"{source}: x has dtype {x.dtype}; expected uint8 or float images")


@DATASETS.register("npz")
@declare("image", path=None, x_key=None, y_key=None, layout=None, class_names=None, split_column=None,
         splits=None, num_classes=count, as_ood=flag)
def load_npz(cfg: dict, seed: int) -> DataBundle:
    path = user_path(cfg, "npz", "FILE")
    source = str(path)
    try:
        with np.load(path, allow_pickle=False) as f:
            arrays = {k: f[k] for k in f.files}
    except (ValueError, OSError, zipfile.BadZipFile, EOFError) as e:
        raise ValueError(f"{source}: cannot read as .npz ({type(e).__name__}: {str(e).splitlines()[0][:150]})") from None
    x_key, y_key = cfg.get("x_key") or "x", cfg.get("y_key") or "y"
    if x_key not in arrays:
        raise ValueError(f"{source}: no array '{x_key}'; it has: {', '.join(arrays) or 'nothing'} (set data.x_key)")
    x = to_unit_float(to_nchw(arrays[x_key], source, cfg.get("layout") or "auto"), source)
    file_names = [str(n) for n in arrays["class_names"].tolist()] if "class_names" in arrays else None
    class_names = list(cfg.get("class_names") or file_names or []) or None
    y = mapping = None
    if y_key in arrays:
        y, names, mapping = encode_labels(arrays[y_key], source, y_key, order=class_names)
        class_names = class_names or names
    elif not is_ood(cfg):
        raise ValueError(f"{source}: no label array '{y_key}'; it has: {', '.join(arrays)} (set data.y_key; "
                         "labels are optional only for ood=npz)")
    given = None
    if cfg.get("split_column"):
        col = cfg["split_column"]
        if col not in arrays:
            raise ValueError(f"{source}: no split array '{col}' (data.split_column); it has: {', '.join(arrays)}")
        given = split_names(arrays[col].tolist(), source, col)
    return build_bundle("npz", source, "image", x, y, cfg, seed, given_splits=given, class_names=class_names,
                        label_mapping=mapping, info={"source": f"npz {source} ({len(x)} images)"})
