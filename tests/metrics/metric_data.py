"""Random and adversarial inputs shared by the metrics tests."""
from __future__ import annotations

import numpy as np
import torch


def softmax_probs(rng: np.random.Generator, n: int, k: int, scale: float = 2.0, dtype=np.float64) -> np.ndarray:
    """Rows of softmax(scale * gaussian), computed in float64 and cast to ``dtype``."""
    z = scale * rng.standard_normal((n, k))
    return torch.softmax(torch.from_numpy(z), dim=1).numpy().astype(dtype)


def tied_probs(rng: np.random.Generator, n: int, k: int) -> np.ndarray:
    """Adversarial rows: small integer counts normalised, so many exact zeros, tied maxima and repeated rows."""
    c = rng.integers(0, 4, size=(n, k)).astype(np.float64)
    c[c.sum(axis=1) == 0, 0] = 1.0
    return c / c.sum(axis=1, keepdims=True)


def labels_with_all_classes(rng: np.random.Generator, n: int, k: int) -> np.ndarray:
    y = rng.integers(0, k, size=n)
    y[:k] = np.arange(k)  # every class present (netcal treats <= 2 distinct labels as a binary problem)
    return y
