"""``ood=cifar10_c`` / ``ood=fashion_mnist_c``: covariate shift, the CIFAR-10-C recipe (Hendrycks & Dietterich
2019) applied by us to the *test* split of CIFAR-10 or Fashion-MNIST (gray images are corrupted as one channel).

Five corruptions with the CIFAR-10-C parameters of ``make_cifar_c.py`` (severity 1..5): ``gaussian_noise``,
``shot_noise``, ``defocus_blur``, ``contrast``, ``jpeg_compression``; cv2 is replaced by exact numpy/scipy
equivalents (Gaussian-blurred disk kernel, reflect-101 borders) and outputs are truncated to uint8 as the recipe does.
Each test image gets one corruption (cycled over ``corruptions`` in a seeded order), so the shifted set has the
test split's size and labels: the bundle declares ``info["shift"] = "covariate"`` and the pipeline also reports
accuracy and selective metrics on it.

The test split is the one ``data=cifar10`` / ``data=fashion_mnist`` makes with the same ``splits`` and seed (the
YAML interpolates ``${data.splits}``), so no corrupted image is a corrupted fit or calibration image.

Example:
    >>> import numpy as np
    >>> from uqcompress.data.corruptions import corrupt
    >>> x = np.full((2, 32, 32, 3), 128, np.uint8)
    >>> corrupt(x, "contrast", 5, np.random.default_rng(0)).dtype
    dtype('uint8')
"""
from __future__ import annotations

import io
from typing import Callable

import numpy as np
import torch

from uqcompress.data import DATASETS, declare
from uqcompress.data.base import DataBundle, Split

#: corruption name -> CIFAR-10-C parameters for severities 1..5
PARAMS: dict[str, list] = {
    "gaussian_noise": [0.04, 0.06, 0.08, 0.09, 0.10],
    "shot_noise": [500, 250, 100, 75, 50],
    "defocus_blur": [(0.3, 0.4), (0.4, 0.5), (0.5, 0.6), (1, 0.2), (1.5, 0.1)],
    "contrast": [0.75, 0.5, 0.4, 0.3, 0.15],
    "jpeg_compression": [80, 65, 58, 50, 40],
}
CORRUPTIONS = tuple(PARAMS)


def _gaussian_noise(x: np.ndarray, c: float, rng: np.random.Generator) -> np.ndarray:
    return np.clip(x + rng.normal(size=x.shape, scale=c), 0, 1)


def _shot_noise(x: np.ndarray, c: float, rng: np.random.Generator) -> np.ndarray:
    return np.clip(rng.poisson(x * c) / c, 0, 1)


def _gaussian_kernel_1d(ksize: int, sigma: float) -> np.ndarray:
    r = np.arange(ksize) - (ksize - 1) / 2
    k = np.exp(-(r**2) / (2 * sigma**2))
    return k / k.sum()


def _reflect101_correlate(img: np.ndarray, kernel: np.ndarray) -> np.ndarray:
    """cv2.filter2D(img, -1, kernel) for a 2-D float image: correlation, anchor at the centre, BORDER_REFLECT_101."""
    from scipy.ndimage import correlate

    return correlate(img, kernel, mode="mirror")  # scipy 'mirror' == cv2 BORDER_REFLECT_101


def disk(radius: float, alias_blur: float) -> np.ndarray:
    """The recipe's defocus kernel: a normalised disk on a 17x17 grid, blurred by a 3x3 Gaussian (sigma
    ``alias_blur``) as ``cv2.GaussianBlur`` does (separable, reflect-101 borders)."""
    size = 8 if radius <= 8 else int(np.ceil(radius))
    ksize = 3 if radius <= 8 else 5
    grid = np.arange(-size, size + 1)
    xx, yy = np.meshgrid(grid, grid)
    d = ((xx**2 + yy**2) <= radius**2).astype(np.float32)
    d /= d.sum()
    g = _gaussian_kernel_1d(ksize, alias_blur)
    return _reflect101_correlate(d, np.outer(g, g)).astype(np.float32)


def _defocus_blur(x: np.ndarray, c: tuple[float, float], rng: np.random.Generator) -> np.ndarray:
    k = disk(*c)
    out = np.empty_like(x)
    for i in range(x.shape[0]):
        for ch in range(x.shape[-1]):
            out[i, :, :, ch] = _reflect101_correlate(x[i, :, :, ch], k)
    return np.clip(out, 0, 1)


def _contrast(x: np.ndarray, c: float, rng: np.random.Generator) -> np.ndarray:
    means = x.mean(axis=(1, 2), keepdims=True)  # per image and channel, as the recipe's axis=(0, 1) on one HWC image
    return np.clip((x - means) * c + means, 0, 1)


def _jpeg(x: np.ndarray, quality: int, rng: np.random.Generator) -> np.ndarray:
    from PIL import Image

    out = np.empty_like(x)
    gray = x.shape[-1] == 1
    for i, img in enumerate(x):
        buf = io.BytesIO()
        pixels = np.uint8(img[..., 0] * 255) if gray else np.uint8(img * 255)  # images arrive as exact /255
        Image.fromarray(pixels).save(buf, "JPEG", quality=quality)
        buf.seek(0)
        with Image.open(buf) as im:
            dec = np.asarray(im.convert("L" if gray else "RGB"), dtype=np.float64) / 255.0
        out[i] = dec[..., None] if gray else dec
    return out


_FUNCS: dict[str, Callable] = {"gaussian_noise": _gaussian_noise, "shot_noise": _shot_noise,
                               "defocus_blur": _defocus_blur, "contrast": _contrast, "jpeg_compression": _jpeg}


def _check(names: list[str], severity: object) -> None:
    unknown = [n for n in names if n not in PARAMS]
    if unknown:
        raise ValueError(f"unknown corruption '{unknown[0]}'; choose from: {', '.join(CORRUPTIONS)}")
    if not isinstance(severity, (int, np.integer)) or isinstance(severity, bool) or not 1 <= int(severity) <= 5:
        raise ValueError(f"corruption severity={severity!r} must be an integer in 1..5")


def corrupt(images: np.ndarray, name: str, severity: int, rng: np.random.Generator) -> np.ndarray:
    """Apply corruption ``name`` at ``severity`` (1..5) to uint8 images (N, H, W, C) or gray (N, H, W); returns uint8
    of the same shape."""
    _check([name], severity)
    gray = images.ndim == 3
    x = (images[..., None] if gray else images).astype(np.float64) / 255.0
    y = np.uint8(_FUNCS[name](x, PARAMS[name][int(severity) - 1], rng) * 255)  # truncation, as make_cifar_c.py
    return y[..., 0] if gray else y


def corrupt_split(images: np.ndarray, names: list[str], severity: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Each image corrupted once, by one of ``names`` cycled in a seeded order (each on ~1/len(names) of them).

    Returns (corrupted uint8 images of the input's shape, index into ``names`` per image).
    """
    _check(names, severity)
    rng = np.random.default_rng([seed, int(severity), 1010])
    which = rng.permutation(len(images)) % len(names)
    out = np.empty_like(images)
    for j, name in enumerate(names):
        sel = np.flatnonzero(which == j)
        if len(sel):
            out[sel] = corrupt(images[sel], name, severity, rng)
    return out, which


def _names(cfg: dict) -> list[str]:
    names = cfg.get("corruptions") or list(CORRUPTIONS)
    return [names] if isinstance(names, str) else [str(n) for n in names]


def _shift_info(names: list[str], severity: int, which: np.ndarray, source: str) -> dict:
    return {"shift": "covariate", "corruptions": list(names), "severity": int(severity),
            "corruption_index": which.tolist(),
            "source": f"{source} corrupted by the CIFAR-10-C recipe (Hendrycks & Dietterich 2019)"}


@DATASETS.register("cifar10_c")
@declare("image", corruptions=None, severity=None, splits=None, source_split=None, root=None, download=None)
def load_cifar10_c(cfg: dict, seed: int) -> DataBundle:
    """The CIFAR-10 test split (same ``splits`` and seed as ``data=cifar10``), each image corrupted once."""
    from uqcompress.data.cifar10 import CLASSES, DEFAULT_SPLITS, cifar10_arrays, split_indices, to_tensor

    names, severity, source = _names(cfg), cfg.get("severity", 3), cfg.get("source_split", "test")
    _check(names, severity)
    x, y = cifar10_arrays(cfg)
    parts = split_indices(y, dict(cfg.get("splits") or DEFAULT_SPLITS), seed)
    if source not in parts:
        raise ValueError(f"ood.source_split={source!r} is not one of the cifar10 splits: {', '.join(parts)}")
    idx = parts[source]
    images, which = corrupt_split(x[idx], names, severity, seed)
    return DataBundle("cifar10_c", "image", 10, {"test": Split(to_tensor(images), torch.from_numpy(y[idx]))},
                      class_names=list(CLASSES), info=_shift_info(names, severity, which, f"CIFAR-10 {source} split"))


@DATASETS.register("fashion_mnist_c")
@declare("image", root=None, corruptions=None, severity=None, splits=None, source_split=None)
def load_fashion_mnist_c(cfg: dict, seed: int) -> DataBundle:
    """The Fashion-MNIST test split (same ``splits`` and seed as ``data=fashion_mnist``), each image corrupted once."""
    from uqcompress.data.fashion_mnist import CLASSES, eval_parts

    names, severity, source = _names(cfg), cfg.get("severity", 3), cfg.get("source_split", "test")
    _check(names, severity)
    x, y, parts = eval_parts(cfg, seed)
    if source not in parts:
        raise ValueError(f"ood.source_split={source!r} is not one of the fashion_mnist splits: {', '.join(parts)}")
    idx = parts[source]
    images, which = corrupt_split(x[idx], names, severity, seed)
    tensor = torch.from_numpy(images.astype(np.float32) / 255.0).unsqueeze(1)
    return DataBundle("fashion_mnist_c", "image", 10, {"test": Split(tensor, torch.from_numpy(y[idx]))},
                      class_names=list(CLASSES),
                      info=_shift_info(names, severity, which, f"Fashion-MNIST {source} split"))
