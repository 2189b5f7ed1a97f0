"""CIFAR-10-C corruptions (recipe parameters, severities, determinism) and ``ood=cifar10_c`` as labelled covariate
shift through the pipeline, on the synthetic bigbench archive (no download)."""
from __future__ import annotations

import numpy as np
import pytest

from uqcompress.data import bigbench, cifar10, load_dataset
from uqcompress.data.corruptions import CORRUPTIONS, corrupt, disk

from tests.data.synthetic_bigbench import make_archive


def _images(n: int = 8, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    # smooth-ish images (a gradient plus texture) so that blur and contrast change something measurable
    grad = np.linspace(30, 220, 32)[None, :, None, None] * np.ones((n, 32, 32, 3)) * 0.5
    return np.clip(grad + rng.integers(0, 128, size=(n, 32, 32, 3)), 0, 255).astype(np.uint8)


@pytest.mark.parametrize("name", CORRUPTIONS)
def test_every_corruption_is_uint8_deterministic_and_worse_with_severity(name):
    x = _images()
    errs = []
    for s in range(1, 6):
        a = corrupt(x, name, s, np.random.default_rng(7))
        b = corrupt(x, name, s, np.random.default_rng(7))
        assert a.dtype == np.uint8 and a.shape == x.shape
        np.testing.assert_array_equal(a, b)
        errs.append(float(((a.astype(float) - x) ** 2).mean()))
    assert errs[0] > 0.5, f"{name} at severity 1 barely changes the images"
    assert errs[-1] > errs[0], f"{name}: severity 5 is not worse than 1 ({errs})"
    assert all(b >= 0.8 * a for a, b in zip(errs, errs[1:])), f"{name}: distortion not increasing: {errs}"


def test_contrast_follows_the_recipe_formula():
    x = _images(2)
    got = corrupt(x, "contrast", 5, np.random.default_rng(0))
    f = x / 255.0
    means = f.mean(axis=(1, 2), keepdims=True)
    want = np.uint8(np.clip((f - means) * 0.15 + means, 0, 1) * 255)
    np.testing.assert_array_equal(got, want)


def test_gaussian_noise_has_the_recipe_scale():
    x = np.full((64, 32, 32, 3), 128, np.uint8)
    y = corrupt(x, "gaussian_noise", 3, np.random.default_rng(0)).astype(float)
    assert abs(y.std() / 255.0 - 0.08) < 0.004  # c = 0.08 at severity 3, no clipping at mid-gray


def test_defocus_kernel_matches_cv2_gaussian_blurred_disk():
    k = disk(0.3, 0.4)  # radius 0.3: the disk is the centre pixel only; blurred by a 3x3 Gaussian (sigma 0.4)
    assert k.shape == (17, 17) and abs(k.sum() - 1) < 1e-6
    g = np.exp(-np.array([1.0, 0.0, 1.0]) / (2 * 0.4**2))
    g /= g.sum()
    np.testing.assert_allclose(k[7:10, 7:10], np.outer(g, g), rtol=1e-5)
    assert k[:7].sum() == 0 and k[10:].sum() == 0
    big = disk(1.5, 0.1)
    np.testing.assert_allclose(big, big.T, atol=1e-7)
    assert (big > 1e-3).sum() == 9  # the 3x3 disk of radius 1.5 (corners at distance sqrt(2) < 1.5)


def test_bad_corruption_or_severity_is_one_line():
    x = _images(1)
    with pytest.raises(ValueError, match="unknown corruption 'fog'; choose from: gaussian_noise"):
        corrupt(x, "fog", 1, np.random.default_rng(0))
    with pytest.raises(ValueError, match="severity=6 must be an integer in 1..5"):
        corrupt(x, "contrast", 6, np.random.default_rng(0))


@pytest.fixture
def synthetic_cifar(tmp_path, tmp_cache, monkeypatch):
    path = tmp_path / "bigbench-1.0.0.tar.gz"
    images, labels = make_archive(path, per_class=6)
    monkeypatch.setattr(bigbench, "bigbench_archive", lambda: path)
    monkeypatch.setenv(bigbench.ENV_VAR, str(path))
    monkeypatch.setattr(cifar10, "SHA256", cifar10.arrays_sha256(images, labels))
    return images, labels


def test_cifar10_c_is_the_corrupted_test_split_with_its_labels(synthetic_cifar):
    splits = {"fit": 0.5, "calibration": 0.25, "test": 0.25}
    d = load_dataset({"name": "cifar10", "splits": splits}, seed=3)
    c = load_dataset({"name": "cifar10_c", "splits": splits, "severity": 5}, seed=3)
    assert c.info["shift"] == "covariate" and c.class_names == d.class_names
    assert list(c.splits) == ["test"]
    np.testing.assert_array_equal(c["test"].y.numpy(), d["test"].y.numpy())
    assert c["test"].x.shape == d["test"].x.shape
    diff = (c["test"].x - d["test"].x).abs().flatten(1).mean(1)
    assert (diff > 0.005).all()  # every image is corrupted
    counts = np.bincount(c.info["corruption_index"], minlength=len(CORRUPTIONS))
    assert counts.max() - counts.min() <= 1  # the five corruptions share the images evenly
    one = load_dataset({"name": "cifar10_c", "splits": splits, "corruptions": ["contrast"], "severity": 2}, seed=3)
    assert one.info["corruptions"] == ["contrast"]
    with pytest.raises(ValueError, match="unknown corruption 'snow'"):
        load_dataset({"name": "cifar10_c", "splits": splits, "corruptions": ["snow"]}, seed=3)


def test_pipeline_reports_shift_metrics_for_labelled_covariate_shift(synthetic_cifar):
    from uqcompress.pipeline import run_config

    splits = {"fit": 0.5, "calibration": 0.25, "test": 0.25}
    res = run_config({
        "data": {"name": "cifar10", "splits": splits}, "ood": {"name": "cifar10_c", "splits": splits, "severity": 4},
        "model": {"name": "small_cnn", "epochs": 1, "width": 8, "hidden": 16}, "quant": {"name": "none"},
        "progress": False, "latency": {"batch_size": 4, "repeats": 1, "warmup": 0},
    })
    m = res.metrics
    for who in ("baseline", "compressed"):
        for k in ("shift_accuracy", "shift_coverage", "shift_selective_risk", "shift_saved_rate"):
            assert f"{who}.{k}" in m
        assert 0 <= m[f"{who}.shift_coverage"] <= 1
    ood = res.predictions[res.predictions.split == "ood"]
    assert (ood.label >= 0).all()  # the labels travelled with the shifted images
    assert m["baseline.shift_accuracy"] == pytest.approx(float((ood.baseline_pred == ood.label).mean()))
    acc = ood.baseline_accepted.astype(bool)
    assert m["baseline.shift_coverage"] == pytest.approx(float(acc.mean()))


def test_far_ood_keeps_no_labels_and_reports_no_shift_metrics(synthetic_cifar):
    from uqcompress.pipeline import load_data

    data, ood = load_data({"data": {"name": "cifar10", "splits": {"fit": 0.5, "calibration": 0.25, "test": 0.25}},
                           "ood": {"name": "animal_mnist", "limit": 12}, "seed": 0, "limit": None})
    assert ood.y is None and tuple(ood.x.shape[1:]) == (3, 32, 32)  # gray 28x28 conformed to RGB 32x32
