"""What every data set hands to the pipeline: named splits of inputs and labels, plus what kind of input they are.

Images are float32 tensors in [0, 1], shape (N, C, H, W); the model owns normalisation. Texts are lists of str.
Labels are int64 tensors in [0, num_classes), or ``None`` for unlabeled OOD data.

Example:
    >>> import torch
    >>> from uqcompress.data.base import DataBundle, Split, stratified_split
    >>> y = torch.arange(10) % 2
    >>> parts = stratified_split(y, {"fit": 0.6, "calibration": 0.2, "test": 0.2}, seed=0)
    >>> sorted(len(v) for v in parts.values())
    [2, 2, 6]
"""
from __future__ import annotations

import numbers
from dataclasses import dataclass, field
from typing import Any, Sequence

import numpy as np
import torch
import torch.nn.functional as F

from uqcompress.cache import fingerprint

MODALITIES = ("image", "text", "multiple_choice", "tensor")  # tensor: any other tensor input (tabular, audio, ...)


@dataclass
class Split:
    """One split: inputs ``x`` (tensor or list), labels ``y`` (int64 tensor or None) and, where the samples come from
    files (``data=image_folder``), each sample's file path in ``sources`` (shown in reports; kept by ``subset``)."""

    x: Any
    y: torch.Tensor | None = None
    sources: list[str] | None = None

    def __len__(self) -> int:
        return len(self.x)

    def subset(self, idx: Sequence[int] | torch.Tensor | np.ndarray) -> "Split":
        idx = torch.as_tensor(np.asarray(idx), dtype=torch.long)
        if isinstance(self.x, torch.Tensor):
            x = self.x[idx]
        else:
            x = [self.x[i] for i in idx.tolist()]
        sources = None if self.sources is None else [self.sources[i] for i in idx.tolist()]
        return Split(x, None if self.y is None else self.y[idx], sources)

    def head(self, n: int | None) -> "Split":
        """The first ``n`` samples (all when ``n`` is None or larger than the split)."""
        if n is None or n >= len(self):
            return self
        return self.subset(range(n))

    def fingerprint(self) -> str:
        return fingerprint(self.x if isinstance(self.x, torch.Tensor) else list(self.x), self.y)


@dataclass
class DataBundle:
    """A data set as the pipeline sees it.

    Attributes:
        name: registry name (``mnist``).
        modality: ``image`` | ``text`` | ``multiple_choice`` | ``tensor``.
        num_classes: size of the label space (None for unlabeled OOD sets).
        splits: ``fit`` / ``calibration`` / ``test`` for ID data; OOD sets use ``test``.
        class_names: human names of the classes.
        info: anything worth reporting (source, label mapping, notes).
    """

    name: str
    modality: str
    num_classes: int | None
    splits: dict[str, Split]
    class_names: list[str] = field(default_factory=list)
    info: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.modality not in MODALITIES:
            raise ValueError(f"data set '{self.name}': modality '{self.modality}' is not one of {MODALITIES}")
        for split_name, s in self.splits.items():
            if len(s) == 0:
                raise ValueError(f"data set '{self.name}': split '{split_name}' is empty")
            if s.y is not None and self.num_classes is not None:
                lo, hi = int(s.y.min()), int(s.y.max())
                if lo < 0 or hi >= self.num_classes:
                    raise ValueError(
                        f"data set '{self.name}': split '{split_name}' has label {hi if hi >= self.num_classes else lo} "
                        f"outside [0, {self.num_classes})"
                    )

    def __getitem__(self, split: str) -> Split:
        try:
            return self.splits[split]
        except KeyError:
            raise KeyError(f"data set '{self.name}' has no split '{split}'; it has: {', '.join(self.splits)}") from None

    @property
    def image_shape(self) -> tuple[int, ...] | None:
        """(C, H, W) of image data sets, else None."""
        if self.modality != "image":
            return None
        return tuple(next(iter(self.splits.values())).x.shape[1:])


def stratified_split(
    labels: torch.Tensor | np.ndarray, fractions: dict[str, float], seed: int
) -> dict[str, np.ndarray]:
    """Deterministic stratified split of indices by ``fractions`` (must sum to 1 within 1e-6).

    Each class is shuffled with ``seed`` and cut by the fractions, so class proportions are kept in every split.
    """
    total = sum(fractions.values())
    if abs(total - 1.0) > 1e-6:
        raise ValueError(f"split fractions {dict(fractions)} sum to {total}, not 1")
    y = np.asarray(labels)
    rng = np.random.default_rng(seed)
    out: dict[str, list[np.ndarray]] = {k: [] for k in fractions}
    names = list(fractions)
    for c in np.unique(y):
        idx = np.flatnonzero(y == c)
        rng.shuffle(idx)
        cuts = np.round(np.cumsum([fractions[k] for k in names]) * len(idx)).astype(int)
        start = 0
        for k, end in zip(names, cuts):
            out[k].append(idx[start:end])
            start = end
    result = {}
    for k in names:
        idx = np.concatenate(out[k]) if out[k] else np.empty(0, dtype=np.int64)
        rng.shuffle(idx)
        result[k] = idx
    return result


def split_bundle(
    name: str,
    modality: str,
    x: Any,
    y: torch.Tensor,
    fractions: dict[str, float],
    seed: int,
    num_classes: int | None = None,
    class_names: list[str] | None = None,
    info: dict[str, Any] | None = None,
) -> DataBundle:
    """Build a :class:`DataBundle` from one pool of samples with a deterministic stratified split."""
    whole = Split(x, y)
    parts = stratified_split(y, fractions, seed)
    k = int(num_classes if num_classes is not None else int(y.max()) + 1)
    return DataBundle(
        name=name,
        modality=modality,
        num_classes=k,
        splits={s: whole.subset(idx) for s, idx in parts.items() if len(idx)},
        class_names=class_names or [str(i) for i in range(k)],
        info=info or {},
    )


def count(value: Any, key: str) -> None:
    """Check an option that is null (= all) or a whole number >= 1 (``limit``, ``data.max_samples``, ...).

    >>> count(None, "limit"); count(5, "limit")
    >>> count(0, "limit")
    Traceback (most recent call last):
    ...
    ValueError: limit=0 must be a whole number >= 1, or null for all
    """
    if value is None:
        return
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < 1:
        raise ValueError(f"{key}={value!r} must be a whole number >= 1, or null for all")


def flag(value: Any, key: str) -> None:
    """Check an option that is true or false."""
    if not isinstance(value, (bool, np.bool_)):
        raise ValueError(f"{key}={value!r} must be true or false")


def check_classes(data: DataBundle, where: str = "data") -> None:
    """Refuse an ID data set whose samples hold fewer than 2 classes: nothing to classify, and every metric would be
    trivially perfect (accuracy 1.0, NLL 0).

    >>> import torch
    >>> one = DataBundle("cats", "tensor", 1, {"test": Split(torch.zeros(3, 2), torch.zeros(3, dtype=torch.long))})
    >>> check_classes(one)
    Traceback (most recent call last):
    ...
    ValueError: data set 'cats' has 1 class (label '0' in all 3 samples); a classifier needs at least 2: add samples of another class
    """
    labels = [s.y for s in data.splits.values() if s.y is not None]
    present = torch.unique(torch.cat(labels)) if labels else torch.empty(0, dtype=torch.long)
    n = sum(len(s) for s in data.splits.values())
    if data.num_classes is not None and data.num_classes < 2:
        has = f"has {int(data.num_classes)} class{'es' if data.num_classes != 1 else ''}"
    elif len(present) < 2:
        has = f"has samples of {len(present)} of its {data.num_classes} classes"
    else:
        return
    names = [data.class_names[int(i)] if int(i) < len(data.class_names) else str(int(i)) for i in present]
    which = f" (label '{names[0]}' in all {n} samples)" if len(names) == 1 else ""
    raise ValueError(f"{where} set '{data.name}' {has}{which}; a classifier needs at least 2: add samples of another "
                     f"class")


def conform_images(x: torch.Tensor, shape: tuple[int, ...]) -> torch.Tensor:
    """Resize / change channels of images (N, C, H, W) to ``shape`` = (C, H, W), e.g. gray 28x28 OOD for RGB 32x32."""
    c, h, w = shape
    if x.shape[1] != c:
        if x.shape[1] == 1:
            x = x.expand(-1, c, -1, -1)
        elif c == 1:
            x = x.mean(1, keepdim=True)
        else:
            raise ValueError(f"cannot convert {x.shape[1]}-channel images to {c} channels")
    if tuple(x.shape[2:]) != (h, w):
        x = F.interpolate(x, size=(h, w), mode="bilinear", align_corners=False, antialias=True)
    return x.contiguous()
