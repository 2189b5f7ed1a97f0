"""``data=fashion_mnist`` / ``ood=fashion_mnist``: Fashion-MNIST (Zalando, MIT) from Debian's
``dataset-fashion-mnist`` package (``apt-get install dataset-fashion-mnist``: idx files under
``/usr/share/datasets/fashion-mnist/``), or any folder with the four idx ``.gz`` files (``data.root=DIR``).

The fit split is ``fit_samples`` images drawn (stratified, by seed) from the 60,000 training images; the 10,000 test
images are split into ``calibration`` / ``test`` by ``splits``. As an OOD set (far-OOD for CIFAR-10, near for MNIST)
the ``test`` split is used.

Example:
    >>> from uqcompress.data import load_dataset
    >>> d = load_dataset({"name": "fashion_mnist"}, seed=0)  # doctest: +SKIP
    >>> d.image_shape, {k: len(s) for k, s in d.splits.items()}  # doctest: +SKIP
    ((1, 28, 28), {'fit': 10000, 'calibration': 5000, 'test': 5000})
"""
from __future__ import annotations

import gzip
from pathlib import Path

import numpy as np
import torch

from uqcompress.data import DATASETS, declare
from uqcompress.data.base import DataBundle, Split, count, stratified_split

DEFAULT_ROOT = "/usr/share/datasets/fashion-mnist"
FILES = {"train": ("train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz"),
         "t10k": ("t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz")}
CLASSES = ["T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot"]
DEFAULT_SPLITS = {"calibration": 0.5, "test": 0.5}
_DTYPES = {0x08: np.uint8, 0x09: np.int8, 0x0B: ">i2", 0x0C: ">i4", 0x0D: ">f4", 0x0E: ">f8"}


def read_idx(path: str | Path) -> np.ndarray:
    """An idx file (optionally gzipped) as a numpy array (format: yann.lecun.com/exdb/mnist)."""
    path = Path(path)
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rb") as f:
        data = f.read()
    if len(data) < 4 or data[0] != 0 or data[1] != 0 or data[2] not in _DTYPES:
        raise ValueError(f"{path} is not an idx file (bad magic {data[:4].hex()})")
    ndim = data[3]
    dims = [int.from_bytes(data[4 + 4 * i : 8 + 4 * i], "big") for i in range(ndim)]
    arr = np.frombuffer(data, dtype=_DTYPES[data[2]], offset=4 + 4 * ndim)
    if arr.size != int(np.prod(dims)):
        raise ValueError(f"{path}: header says {dims} but holds {arr.size} values")
    return arr.reshape(dims)


def fashion_mnist_arrays(root: str | Path = DEFAULT_ROOT) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """``{"train": (images (60000, 28, 28) uint8, labels int64), "t10k": (...)}`` from the idx files in ``root``."""
    root = Path(root)
    missing = [f for pair in FILES.values() for f in pair if not (root / f).is_file()]
    if missing:
        raise FileNotFoundError(
            f"Fashion-MNIST idx files not found in {root} (missing {missing[0]}); on Debian/Ubuntu: "
            f"sudo apt-get install dataset-fashion-mnist, or set data.root=DIR with the four idx .gz files"
        )
    out = {}
    for part, (img, lab) in FILES.items():
        x, y = read_idx(root / img), read_idx(root / lab).astype(np.int64)
        if x.ndim != 3 or len(x) != len(y):
            raise ValueError(f"{root / img}: {x.shape} images for {len(y)} labels")
        out[part] = (x, y)
    return out


def _tensor(x: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(x.astype(np.float32) / 255.0).unsqueeze(1)


@DATASETS.register("fashion_mnist")
@declare("image", root=None, fit_samples=count, splits=None)
def load_fashion_mnist(cfg: dict, seed: int) -> DataBundle:
    arrays = fashion_mnist_arrays(cfg.get("root") or DEFAULT_ROOT)
    xtr, ytr = arrays["train"]
    xte, yte = arrays["t10k"]
    n_fit = int(cfg.get("fit_samples", 10000))
    if not 0 < n_fit <= len(ytr):
        raise ValueError(f"data.fit_samples={n_fit} must lie in 1..{len(ytr)}")
    fit_idx = stratified_split(ytr, {"fit": n_fit / len(ytr), "rest": 1 - n_fit / len(ytr)}, seed)["fit"]
    parts = stratified_split(yte, dict(cfg.get("splits") or DEFAULT_SPLITS), seed)
    splits = {"fit": Split(_tensor(xtr[fit_idx]), torch.from_numpy(ytr[fit_idx]))}
    splits.update({k: Split(_tensor(xte[idx]), torch.from_numpy(yte[idx])) for k, idx in parts.items() if len(idx)})
    return DataBundle("fashion_mnist", "image", 10, splits, class_names=list(CLASSES),
                      info={"source": "Fashion-MNIST idx files (Debian dataset-fashion-mnist)"})
