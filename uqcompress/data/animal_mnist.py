"""``ood=animal_mnist``: 10,000 28x28 animal silhouettes from PyPI ``animal-mnist`` (MIT), a far-OOD set for digits.

The package's own loader imports tensorflow, so its gzip-pickled arrays are read directly.

Example:
    >>> from uqcompress.data import load_dataset
    >>> d = load_dataset({"name": "animal_mnist"}, seed=0)
    >>> d["test"].x.shape
    torch.Size([10000, 1, 28, 28])
"""
from __future__ import annotations

import gzip
import pickle

import numpy as np
import torch

from uqcompress.data import DATASETS, declare, package_file
from uqcompress.data.base import DataBundle, Split


def _read(name: str) -> np.ndarray:
    path = package_file("animal_mnist", f"data/Animal_MNIST/{name}", pip_name="animal-mnist")
    with gzip.open(path, "rb") as f:
        return np.asarray(pickle.load(f))  # a file of a pinned, installed package, not user input


@DATASETS.register("animal_mnist")
@declare("image")
def load_animal_mnist(cfg: dict, seed: int) -> DataBundle:
    x = torch.as_tensor(_read("animal_data_version_3.gz"), dtype=torch.float32).reshape(-1, 1, 28, 28) / 255.0
    y = torch.as_tensor(_read("animal_label_version_3.gz"), dtype=torch.long)
    return DataBundle(
        "animal_mnist", "image", num_classes=int(y.max()) + 1, splits={"test": Split(x, y)},
        info={"source": "animal-mnist 0.4 (animal silhouettes, 28x28)"},
    )
