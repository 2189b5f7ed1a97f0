import numpy as np
import pytest
import torch

from uqcompress.data import load_dataset, package_file
from uqcompress.data.base import DataBundle, Split, conform_images, stratified_split
from uqcompress.models.base import check_num_classes


def test_mnist_embedded_default_is_real_and_split_deterministically():
    a = load_dataset({"name": "mnist"}, seed=0)
    b = load_dataset({"name": "mnist"}, seed=0)
    c = load_dataset({"name": "mnist"}, seed=1)
    assert {k: len(v) for k, v in a.splits.items()} == {"fit": 3000, "calibration": 1000, "test": 1000}
    assert torch.equal(a["test"].x, b["test"].x) and not torch.equal(a["test"].x, c["test"].x)
    # stratified: 100 test digits per class; no sample in two splits
    assert torch.bincount(a["test"].y).tolist() == [100] * 10
    flat = {k: {tuple(r.flatten()[::7].tolist()) for r in v.x[:200]} for k, v in a.splits.items()}
    assert not (flat["fit"] & flat["test"])
    assert 0.0 <= float(a["fit"].x.min()) and float(a["fit"].x.max()) <= 1.0


def test_animal_mnist_reads_package_files():
    d = load_dataset({"name": "animal_mnist"}, seed=0)
    assert d["test"].x.shape == (10000, 1, 28, 28) and d["test"].x.dtype == torch.float32
    assert d["test"].x.max() <= 1.0 and d["test"].x.mean() > 0.01


def test_stratified_split_fractions_and_errors():
    y = np.repeat(np.arange(3), 100)
    parts = stratified_split(y, {"a": 0.5, "b": 0.3, "c": 0.2}, seed=0)
    assert [len(parts[k]) for k in "abc"] == [150, 90, 60]
    assert len(np.unique(np.concatenate(list(parts.values())))) == 300
    with pytest.raises(ValueError, match="sum to"):
        stratified_split(y, {"a": 0.5, "b": 0.3}, seed=0)


def test_labels_outside_classes_are_refused_with_both_numbers():
    with pytest.raises(ValueError, match=r"has 12 classes but model 'small_cnn' predicts 10"):
        check_num_classes("small_cnn", 10, "mine", 12)
    with pytest.raises(ValueError, match=r"label 7 outside \[0, 5\)"):
        DataBundle("mine", "image", 5, {"test": Split(torch.zeros(3, 1, 2, 2), torch.tensor([0, 7, 1]))})
    with pytest.raises(ValueError, match="split 'test' is empty"):
        DataBundle("mine", "image", 5, {"test": Split(torch.zeros(0, 1, 2, 2), torch.zeros(0, dtype=torch.long))})


def test_missing_data_package_names_pip_package():
    with pytest.raises(ModuleNotFoundError, match="pip install --no-deps not-a-real-pkg"):
        package_file("not_a_real_pkg", "data/x.csv", pip_name="not-a-real-pkg")


def test_conform_images_gray_to_rgb_and_resize():
    x = torch.rand(4, 1, 28, 28)
    y = conform_images(x, (3, 32, 32))
    assert y.shape == (4, 3, 32, 32) and torch.allclose(y[:, 0], y[:, 2])
