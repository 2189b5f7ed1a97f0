"""A small bigbench-shaped source archive with a synthetic CIFAR-10 task, for tests that must not download."""
from __future__ import annotations

import base64
import io
import json
import tarfile
from pathlib import Path

import numpy as np
from PIL import Image

from uqcompress.data.cifar10 import CLASSES


def _png_b64(img: np.ndarray) -> str:
    buf = io.BytesIO()
    Image.fromarray(img).save(buf, "PNG")
    return base64.b64encode(buf.getvalue()).decode()


def _task_json(images: np.ndarray, labels: np.ndarray) -> bytes:
    examples = [{"input": _png_b64(im), "target_scores": {c: int(i == y) for i, c in enumerate(CLASSES)}}
                for im, y in zip(images, labels)]
    return json.dumps({"name": "base64", "examples": examples}).encode()


def _add(tar: tarfile.TarFile, name: str, data: bytes) -> None:
    info = tarfile.TarInfo(name)
    info.size = len(data)
    tar.addfile(info, io.BytesIO(data))


def make_archive(path: Path, per_class: int = 3, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """A bigbench-shaped .tar.gz with a CIFAR-10 task of random images, plus an unrelated task and a decoy file."""
    rng = np.random.default_rng(seed)
    labels = np.repeat(np.arange(10), per_class).astype(np.int64)
    images = rng.integers(0, 256, size=(len(labels), 32, 32, 3), dtype=np.uint8)
    root = "bigbench-1.0.0/bigbench/benchmark_tasks"
    with tarfile.open(path, "w:gz") as tar:
        _add(tar, "bigbench-1.0.0/setup.py", b"print('never run')")
        _add(tar, f"{root}/cifar10_classification/task.json", b'{"name": "cifar10_classification"}')
        _add(tar, f"{root}/cifar10_classification/base64/task.json", _task_json(images, labels))
        _add(tar, f"{root}/cifar10_classification/hex/task.json", b'{"examples": []}')
        _add(tar, f"{root}/other_task/task.json", b'{"name": "other"}')
        _add(tar, f"{root}/other_task/../../escape.json", b"{}")  # a path that must never be written
    return images, labels
