"""Fashion-MNIST: the idx reader on files the test writes, and the Debian data set when installed."""
from __future__ import annotations

import gzip
from pathlib import Path

import numpy as np
import pytest

from uqcompress.data import load_dataset
from uqcompress.data.fashion_mnist import FILES, read_idx

from tests.data.real_sources import debian_fashion_mnist  # noqa: F401  (fixture)


def _write_idx(path: Path, arr: np.ndarray) -> None:
    header = bytes([0, 0, 0x08, arr.ndim]) + b"".join(int(d).to_bytes(4, "big") for d in arr.shape)
    with gzip.open(path, "wb") as f:
        f.write(header + arr.astype(np.uint8).tobytes())


def _fake_root(root: Path, n_train: int = 40, n_test: int = 20) -> None:
    rng = np.random.default_rng(0)
    root.mkdir(parents=True, exist_ok=True)
    for part, n in (("train", n_train), ("t10k", n_test)):
        img, lab = FILES[part]
        _write_idx(root / img, rng.integers(0, 256, size=(n, 28, 28)))
        _write_idx(root / lab, np.arange(n) % 10)


def test_read_idx_roundtrip_and_bad_magic(tmp_path):
    arr = np.arange(2 * 3 * 4, dtype=np.uint8).reshape(2, 3, 4)
    _write_idx(tmp_path / "a.gz", arr)
    np.testing.assert_array_equal(read_idx(tmp_path / "a.gz"), arr)
    (tmp_path / "b").write_bytes(b"\x1f\x00\x08\x01" + b"\x00" * 8)
    with pytest.raises(ValueError, match="not an idx file"):
        read_idx(tmp_path / "b")


def test_loader_on_a_folder_of_idx_files(tmp_path):
    _fake_root(tmp_path / "fm")
    d = load_dataset({"name": "fashion_mnist", "root": str(tmp_path / "fm"), "fit_samples": 20}, seed=0)
    assert d.image_shape == (1, 28, 28) and d.num_classes == 10 and d.class_names[0] == "T-shirt/top"
    assert {k: len(s) for k, s in d.splits.items()} == {"fit": 20, "calibration": 10, "test": 10}
    assert sorted(d["fit"].y.tolist()) == sorted(list(range(10)) * 2)  # stratified draw from the train file
    with pytest.raises(ValueError, match="fit_samples=99 must lie in 1..40"):
        load_dataset({"name": "fashion_mnist", "root": str(tmp_path / "fm"), "fit_samples": 99}, seed=0)


def test_fashion_mnist_c_corrupts_the_test_split_of_the_same_split_and_seed(tmp_path):
    from uqcompress.data.corruptions import CORRUPTIONS, corrupt

    _fake_root(tmp_path / "fm", n_test=40)
    cfg = {"root": str(tmp_path / "fm"), "fit_samples": 20, "splits": {"calibration": 0.5, "test": 0.5}}
    d = load_dataset({"name": "fashion_mnist", **cfg}, seed=4)
    c = load_dataset({"name": "fashion_mnist_c", **cfg, "severity": 5}, seed=4)
    assert c.info["shift"] == "covariate" and c.class_names == d.class_names and list(c.splits) == ["test"]
    assert c["test"].x.shape == d["test"].x.shape == (20, 1, 28, 28)
    np.testing.assert_array_equal(c["test"].y.numpy(), d["test"].y.numpy())
    assert ((c["test"].x - d["test"].x).abs().flatten(1).mean(1) > 0.005).all()  # every image corrupted
    counts = np.bincount(c.info["corruption_index"], minlength=len(CORRUPTIONS))
    assert counts.max() - counts.min() <= 1
    # a gray image is corrupted as the one-channel image it is (same result as an explicit channel axis)
    gray = (d["test"].x[:3, 0].numpy() * 255).round().astype(np.uint8)
    for name in CORRUPTIONS:
        a = corrupt(gray, name, 3, np.random.default_rng(1))
        b = corrupt(gray[..., None], name, 3, np.random.default_rng(1))[..., 0]
        assert a.shape == gray.shape and a.dtype == np.uint8 and np.array_equal(a, b), name
    with pytest.raises(ValueError, match="severity=0 must be an integer in 1..5"):
        load_dataset({"name": "fashion_mnist_c", **cfg, "severity": 0}, seed=4)


def test_missing_folder_names_the_apt_package(tmp_path):
    with pytest.raises(FileNotFoundError, match="apt-get install dataset-fashion-mnist"):
        load_dataset({"name": "fashion_mnist", "root": str(tmp_path / "none")}, seed=0)


def test_debian_fashion_mnist_has_60k_10k_balanced(debian_fashion_mnist):
    from uqcompress.data.fashion_mnist import fashion_mnist_arrays

    arrays = fashion_mnist_arrays()
    (xtr, ytr), (xte, yte) = arrays["train"], arrays["t10k"]
    assert xtr.shape == (60000, 28, 28) and xte.shape == (10000, 28, 28) and xtr.dtype == np.uint8
    assert np.bincount(ytr).tolist() == [6000] * 10 and np.bincount(yte).tolist() == [1000] * 10
    d = load_dataset({"name": "fashion_mnist", "fit_samples": 1000}, seed=0)
    assert len(d["fit"]) == 1000 and len(d["calibration"]) == 5000 and float(d["test"].x.max()) <= 1.0
