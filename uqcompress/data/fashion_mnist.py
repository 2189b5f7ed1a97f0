"""``data=fashion_mnist`` / ``ood=fashion_mnist``: Fashion-MNIST (Zalando, MIT) from Debian's
``dataset-fashion-mnist`` package (``apt-get install dataset-fashion-mnist``: idx files under
``/usr/share/datasets/fashion-mnist/``), or any folder with the four idx ``.gz`` files (``data.root=DIR``); the
routes are :data:`SOURCE`. ``make setup`` installs the Debian package where apt-get is usable.

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
from uqcompress.data.sources import Route, Source, register

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


def _idx_folder(root: str | Path | None) -> Path | None:
    """``root`` when it holds the four idx files, else None."""
    if not root:
        return None
    root = Path(root).expanduser()
    return root if all((root / f).is_file() for pair in FILES.values() for f in pair) else None


def _user_root(cfg: dict) -> Path | None:
    root = cfg.get("root")
    if root and Path(str(root)).expanduser() != Path(DEFAULT_ROOT):
        found = _idx_folder(root)
        if found is None:  # the user named a folder: say what is wrong with it rather than fall back silently
            missing = next(f for pair in FILES.values() for f in pair if not (Path(str(root)) / f).is_file())
            raise FileNotFoundError(f"data.root={root} lacks the Fashion-MNIST idx file {missing} (it needs the "
                                    f"four idx .gz files); or leave data.root unset to read Debian's package "
                                    f"(sudo apt-get install dataset-fashion-mnist)")
        return found
    return None


#: where Fashion-MNIST comes from, in order: a folder the user names, Debian's package
SOURCE = register(Source("fashion_mnist", "Fashion-MNIST, 60,000 + 10,000 labelled 28x28 product photos", (
    Route("user", "a folder of the four idx .gz files", "set data.root=DIR", _user_root, licence="MIT"),
    Route("debian", "Debian package dataset-fashion-mnist", "sudo apt-get install dataset-fashion-mnist "
          "(make setup does it where apt-get is usable)", lambda cfg: _idx_folder(DEFAULT_ROOT), size="31 MB",
          licence="MIT"),
)))


def fashion_mnist_arrays(root: str | Path | None = None, parts: tuple[str, ...] = tuple(FILES)
                         ) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """``{"train": (images (60000, 28, 28) uint8, labels int64), "t10k": (...)}`` from the idx files in ``root``
    (default: the first present route of :data:`SOURCE`); ``parts`` limits which files are decoded."""
    _, root = SOURCE.resolve({"root": root})
    out = {}
    for part in parts:
        img, lab = FILES[part]
        x, y = read_idx(root / img), read_idx(root / lab).astype(np.int64)
        if x.ndim != 3 or len(x) != len(y):
            raise ValueError(f"{root / img}: {x.shape} images for {len(y)} labels")
        out[part] = (x, y)
    return out


def _tensor(x: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(x.astype(np.float32) / 255.0).unsqueeze(1)


def eval_parts(cfg: dict, seed: int) -> tuple[np.ndarray, np.ndarray, dict[str, np.ndarray]]:
    """The 10,000 test images, their labels, and the indices of the calibration / test splits that ``data=
    fashion_mnist`` makes with ``cfg['splits']`` and ``seed`` (``ood=fashion_mnist_c`` corrupts the same test split)."""
    xte, yte = fashion_mnist_arrays(cfg.get("root"), parts=("t10k",))["t10k"]  # the 60,000 training images unread
    return xte, yte, _eval_split(yte, cfg, seed)


def _eval_split(labels: np.ndarray, cfg: dict, seed: int) -> dict[str, np.ndarray]:
    return stratified_split(labels, dict(cfg.get("splits") or DEFAULT_SPLITS), seed)


@DATASETS.register("fashion_mnist")
@declare("image", root=None, fit_samples=count, splits=None)
def load_fashion_mnist(cfg: dict, seed: int) -> DataBundle:
    route, root = SOURCE.resolve({"root": cfg.get("root")})
    arrays = fashion_mnist_arrays(root)
    xtr, ytr = arrays["train"]
    xte, yte = arrays["t10k"]
    n_fit = int(cfg.get("fit_samples", 10000))
    if not 0 < n_fit <= len(ytr):
        raise ValueError(f"data.fit_samples={n_fit} must lie in 1..{len(ytr)}")
    fit_idx = stratified_split(ytr, {"fit": n_fit / len(ytr), "rest": 1 - n_fit / len(ytr)}, seed)["fit"]
    parts = _eval_split(yte, cfg, seed)
    splits = {"fit": Split(_tensor(xtr[fit_idx]), torch.from_numpy(ytr[fit_idx]))}
    splits.update({k: Split(_tensor(xte[idx]), torch.from_numpy(yte[idx])) for k, idx in parts.items() if len(idx)})
    return DataBundle("fashion_mnist", "image", 10, splits, class_names=list(CLASSES),
                      info={"source": f"Fashion-MNIST idx files in {root} ({route.what})"})
