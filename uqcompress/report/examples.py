"""The inputs behind a run's numbers: stable sample ids, readable inputs, and the flipped examples with thumbnails.

- :func:`sample_ids`: ``<split>-<index in split>-<8 hex of the sample's content hash>``; the index says where the
  sample sits in its split, the hash ties the id to the input itself (same input, same id, in any run of that split).
- :func:`input_texts`: what ``predictions.csv`` shows as ``input``: a text (truncated to :data:`TEXT_CHARS`), a
  multiple-choice question with its options, or an image's file path; None for tensors without files.
- :func:`flipped`: the test rows whose correctness changed (C→I first, then I→C).
- :func:`write_thumbnails` / :func:`read_thumbnails`: ``thumbnails.json`` in a run folder maps the ids of the flipped
  image samples to small PNG data URIs, for the HTML pages (images are not in ``predictions.csv``).

Example:
    >>> sample_ids("test", ["a cat", "a dog"])[0][:7]
    'test-0-'
    >>> input_texts(["x" * 300])[0][-3:], len(input_texts(["x" * 300])[0])
    ('xx…', 200)
"""
from __future__ import annotations

import base64
import hashlib
import io
import json
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import pandas as pd

TEXT_CHARS = 200
THUMBNAILS = "thumbnails.json"
MAX_EXAMPLES = 60
THUMB_PX = 72


def _content_bytes(sample: Any) -> bytes:
    if hasattr(sample, "detach"):
        sample = sample.detach().cpu().numpy()
    if isinstance(sample, np.ndarray):
        return np.ascontiguousarray(sample).tobytes() + str(sample.shape).encode()
    if isinstance(sample, (dict, list, tuple)):
        return json.dumps(sample, sort_keys=True, default=str).encode()
    return str(sample).encode()


def sample_ids(split: str, x: Sequence[Any]) -> list[str]:
    """One id per sample: ``<split>-<index>-<content hash>`` (blake2b, 4 bytes)."""
    return [f"{split}-{i}-{hashlib.blake2b(_content_bytes(s), digest_size=4).hexdigest()}" for i, s in enumerate(x)]


def _truncate(text: str, n: int = TEXT_CHARS) -> str:
    text = " ".join(str(text).split())  # one line: newlines and runs of spaces collapse
    return text if len(text) <= n else text[: n - 1] + "…"


def _describe(sample: Any) -> str:
    if isinstance(sample, dict) and "question" in sample:  # multiple choice
        options = " | ".join(map(str, sample.get("options", [])))
        return _truncate(f"{sample['question']} [options: {options}]")
    return _truncate(sample)


def input_texts(x: Any, sources: Sequence[str] | None = None) -> list[str] | None:
    """The ``input`` column: file paths when the samples have files, texts for text data, else None."""
    if sources is not None:
        return [str(s) for s in sources]
    if isinstance(x, (list, tuple)) and x and isinstance(x[0], (str, dict)):
        return [_describe(s) for s in x]
    return None


def flipped(pred: pd.DataFrame, limit: int | None = MAX_EXAMPLES) -> pd.DataFrame:
    """Test rows whose correctness changed from baseline to compressed, C→I first, each kind by confidence (most
    confident compressed answer first); adds a ``flip`` column (``C→I`` / ``I→C``)."""
    test = pred[pred["split"] == "test"]
    ok_b = test["baseline_pred"] == test["label"]
    ok_c = test["compressed_pred"] == test["label"]
    rows = test[ok_b != ok_c].assign(flip=np.where(ok_b[ok_b != ok_c], "C→I", "I→C"))
    rows = rows.sort_values(["flip", "compressed_confidence"], ascending=[True, False], kind="stable")
    return rows if limit is None else rows.head(limit)


def thumbnail(image: Any, px: int = THUMB_PX) -> str:
    """A (C, H, W) image in [0, 1] as a PNG data URI, scaled (nearest neighbour, no blur) to about ``px`` pixels."""
    from PIL import Image

    a = image.detach().cpu().numpy() if hasattr(image, "detach") else np.asarray(image)
    a = np.clip(np.nan_to_num(a.astype(np.float32)), 0.0, 1.0)
    a = (a * 255 + 0.5).astype(np.uint8)
    img = Image.fromarray(a[0] if a.shape[0] == 1 else np.moveaxis(a[:3], 0, -1))
    scale = max(1, round(px / max(img.size)))
    if scale > 1:
        img = img.resize((img.width * scale, img.height * scale), Image.NEAREST)
    elif max(img.size) > px:
        img.thumbnail((px, px))
    buf = io.BytesIO()
    img.save(buf, format="PNG", optimize=True)
    return "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode("ascii")


def write_thumbnails(run_dir: str | Path, pred: pd.DataFrame, test_images: Any) -> Path | None:
    """Write ``thumbnails.json`` (id -> PNG data URI) for the flipped test samples; None when there are none or the
    test inputs are not images ((N, C, H, W) with 1 or 3 channels)."""
    from uqcompress.cache import atomic_write_text

    shape = getattr(test_images, "shape", ())
    if len(shape) != 4 or shape[1] not in (1, 3):
        return None
    rows = flipped(pred)
    if not len(rows):
        return None
    thumbs = {str(i): thumbnail(test_images[int(k)]) for i, k in zip(rows["id"], rows["index"])}
    path = Path(run_dir) / THUMBNAILS
    atomic_write_text(path, json.dumps(thumbs))
    return path


def read_thumbnails(run_dir: str | Path) -> dict[str, str]:
    """The run's thumbnails (empty when it has none, or the file is unreadable: the pages then show no images)."""
    try:
        data = json.loads((Path(run_dir) / THUMBNAILS).read_text())
    except (OSError, ValueError):
        return {}
    return {str(k): v for k, v in data.items() if isinstance(v, str) and v.startswith("data:image/png;base64,")} \
        if isinstance(data, dict) else {}
