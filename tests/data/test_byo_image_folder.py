"""data=image_folder / ood=image_folder: real MNIST digits and animal silhouettes written as PNG folders."""
import json

import numpy as np
import pytest
import torch
from PIL import Image

from byo_helpers import one_thread  # noqa: F401  (fixture)
from uqcompress.data import load_dataset

pytestmark = pytest.mark.usefixtures("one_thread")

FAST = ["limit=300", "fit_limit=300", "model.epochs=6", "model.batch_size=32", "progress=false", "latency.repeats=2",
        "threads=1"]  # one thread: tiny models on a shared CPU train faster without thread contention
PER_CLASS = 40


def save_png(path, chw: torch.Tensor) -> None:
    a = (chw.numpy() * 255).round().astype(np.uint8)
    Image.fromarray(a[0] if a.shape[0] == 1 else a.transpose(1, 2, 0)).save(path)


@pytest.fixture(scope="module")
def mnist_folder(tmp_path_factory):
    """400 real MNIST digits (40 per class) as root/<digit>/<nnn>.png; returns (root, source images in file order)."""
    root = tmp_path_factory.mktemp("mnist_png")
    fit = load_dataset({"name": "mnist"}, 0)["fit"]
    src = []
    for c in range(10):
        (root / str(c)).mkdir()
        idx = torch.nonzero(fit.y == c).flatten()[:PER_CLASS]
        for i, j in enumerate(idx.tolist()):
            save_png(root / str(c) / f"{i:03d}.png", fit.x[j])
            src.append(fit.x[j])
    return root, torch.stack(src)


@pytest.fixture(scope="module")
def animal_folder(tmp_path_factory):
    """150 real animal silhouettes as a flat folder of PNGs (an OOD set needs no class folders)."""
    root = tmp_path_factory.mktemp("animal_png")
    x = load_dataset({"name": "animal_mnist"}, 0)["test"].x[:150]
    for i in range(len(x)):
        save_png(root / f"a{i:03d}.png", x[i])
    return root


def test_reads_classes_pixels_and_stratified_splits(mnist_folder):
    root, src = mnist_folder
    d = load_dataset({"name": "image_folder", "path": str(root)}, seed=0)
    assert d.modality == "image" and d.image_shape == (1, 28, 28) and d.num_classes == 10
    assert d.class_names == [str(c) for c in range(10)]
    assert d.info["label_mapping"] == {str(c): c for c in range(10)}
    assert {k: len(s) for k, s in d.splits.items()} == {"fit": 240, "calibration": 80, "test": 80}
    for s in d.splits.values():  # stratified: every class in every split, in proportion
        assert torch.bincount(s.y, minlength=10).tolist() == [len(s) // 10] * 10
    # lossless round trip: as an OOD set the folder comes back whole, in file order
    whole = load_dataset({"name": "image_folder", "path": str(root), "as_ood": True}, seed=0)["test"]
    assert torch.equal(whole.x, src)
    assert whole.y.tolist() == [c for c in range(10) for _ in range(PER_CLASS)]


def test_split_is_deterministic_by_seed(mnist_folder):
    root, _ = mnist_folder
    a, b, c = (load_dataset({"name": "image_folder", "path": str(root)}, seed=s)["test"] for s in (0, 0, 1))
    assert torch.equal(a.x, b.x) and not torch.equal(a.x, c.x)


def test_split_folders_and_max_per_class(tmp_path):
    rng = np.random.default_rng(0)
    for split, n in (("train", 6), ("val", 3), ("test", 4)):
        for cls in ("ant", "bee"):
            (tmp_path / split / cls).mkdir(parents=True)
            for i in range(n):
                Image.fromarray(rng.integers(0, 255, (9, 7, 3), dtype=np.uint8)).save(tmp_path / split / cls / f"{i}.jpg")
    d = load_dataset({"name": "image_folder", "path": str(tmp_path), "split_folders": True}, seed=0)
    assert {k: len(s) for k, s in d.splits.items()} == {"fit": 12, "calibration": 6, "test": 8}
    assert d.image_shape == (3, 9, 7) and d.class_names == ["ant", "bee"]
    d2 = load_dataset({"name": "image_folder", "path": str(tmp_path), "split_folders": True, "max_per_class": 2},
                      seed=0)
    assert {k: len(s) for k, s in d2.splits.items()} == {"fit": 4, "calibration": 4, "test": 4}


def _write(path, mode, size):
    arr = np.full((size[1], size[0]) + ((3,) if mode == "RGB" else ()), 128, np.uint8)
    Image.fromarray(arr, mode).save(path)


def test_sizes_and_channels(tmp_path):
    for cls in ("a", "b"):
        (tmp_path / cls).mkdir()
        for i in range(5):
            _write(tmp_path / cls / f"{i}.png", "L", (16, 12))
    _write(tmp_path / "b" / "big.png", "L", (20, 30))
    with pytest.raises(ValueError, match=r"big\.png: image is 20x30 but .* is 16x12; set data.image_size"):
        load_dataset({"name": "image_folder", "path": str(tmp_path)}, 0)
    d = load_dataset({"name": "image_folder", "path": str(tmp_path), "image_size": [10, 14]}, 0)
    assert d.image_shape == (1, 10, 14)
    assert torch.allclose(d["test"].x, torch.full_like(d["test"].x, 128 / 255), atol=1e-6)
    _write(tmp_path / "a" / "colour.png", "RGB", (16, 12))
    with pytest.raises(ValueError) as e:
        load_dataset({"name": "image_folder", "path": str(tmp_path), "image_size": 8}, 0)
    msg = str(e.value)
    assert "colour.png" in msg and "3 channel" in msg and "data.channels=1" in msg and "\n" not in msg
    d3 = load_dataset({"name": "image_folder", "path": str(tmp_path), "image_size": 8, "channels": 3}, 0)
    d1 = load_dataset({"name": "image_folder", "path": str(tmp_path), "image_size": 8, "channels": 1}, 0)
    assert d3.image_shape == (3, 8, 8) and d1.image_shape == (1, 8, 8)
    with pytest.raises(ValueError, match="data.channels=2 is not one of: 1, 3"):
        load_dataset({"name": "image_folder", "path": str(tmp_path), "channels": 2}, 0)


def test_16bit_grayscale_is_scaled(tmp_path):
    (tmp_path / "x").mkdir()
    for i, v in enumerate((0, 32768, 65535, 1000, 2000)):
        Image.fromarray(np.full((4, 4), v, np.uint16)).save(tmp_path / "x" / f"{i}.png")
    x = load_dataset({"name": "image_folder", "path": str(tmp_path), "as_ood": True}, 0)["test"].x
    assert x.shape == (5, 1, 4, 4)
    assert x[:3, 0, 0, 0].tolist() == pytest.approx([0.0, 32768 / 65535, 1.0], abs=1e-6)


def test_bad_inputs_are_one_line_errors_naming_the_path(tmp_path):
    def err(path, exc=ValueError, **kw):
        with pytest.raises(exc) as e:
            load_dataset({"name": "image_folder", "path": str(path), **kw}, 0)
        assert "\n" not in str(e.value)
        return str(e.value)

    assert "does not exist" in err(tmp_path / "nope", FileNotFoundError)
    with pytest.raises(ValueError, match="needs a path: add data.path=DIR"):
        load_dataset({"name": "image_folder"}, 0)
    empty = tmp_path / "empty"
    empty.mkdir()
    assert str(empty) in err(empty) and "<class>/<image>.png" in err(empty)
    (empty / "cls").mkdir()
    assert "class folder has no images" in err(empty)
    flat = tmp_path / "flat"
    flat.mkdir()
    _write(flat / "0.png", "L", (5, 5))
    assert "only as ood=" in err(flat)
    assert load_dataset({"name": "image_folder", "path": str(flat), "as_ood": True}, 0)["test"].y is None
    bad = tmp_path / "bad"
    (bad / "c").mkdir(parents=True)
    _write(bad / "c" / "ok.png", "L", (5, 5))
    (bad / "c" / "broken.png").write_bytes(b"not a png")
    assert "broken.png: cannot read image" in err(bad)
    assert "is a file" in err(bad / "c" / "ok.png")


def test_num_classes_smaller_than_folders_is_refused(mnist_folder):
    root, _ = mnist_folder
    with pytest.raises(ValueError, match=r"label 9 is outside the 5 classes given by data.num_classes"):
        load_dataset({"name": "image_folder", "path": str(root), "num_classes": 5}, 0)


@pytest.mark.slow
def test_cli_end_to_end_int8_with_image_folder_ood(cli, mnist_folder, animal_folder, tmp_path):
    root, _ = mnist_folder
    out = tmp_path / "run"
    r = cli("data=image_folder", f"data.path={root}", "ood=image_folder", f"ood.path={animal_folder}",
            "quant=int8", *FAST, f"hydra.run.dir={out}")
    assert r.returncode == 0, r.stderr[-3000:]
    res = json.loads((out / "results.json").read_text())
    assert res["config.data"] == "image_folder" and res["config.quant"] == "int8"
    assert res["n_test"] == 80 and res["n_calibration"] == 80 and res["n_ood"] == 150
    assert 0.5 < res["baseline.accuracy"] <= 1 and 0.5 < res["compressed.accuracy"] <= 1
    assert res["compressed.model_size_bytes"] < 0.3 * res["baseline.model_size_bytes"]
    assert res["data.label_mapping"] == [str(c) for c in range(10)]
    assert 0.5 < res["compressed.ood_auroc"] <= 1  # silhouettes are far from digits


def test_every_sample_keeps_its_file_path_through_splits_and_limits(mnist_folder, animal_folder):
    """``Split.sources`` names each sample's own file (reports show it), through the split, ``head`` and ``subset``."""
    root, _ = mnist_folder
    d = load_dataset({"name": "image_folder", "path": str(root)}, seed=0)
    for s in (d["test"], d["calibration"].head(7), d["fit"].subset([5, 2, 9])):
        assert len(s.sources) == len(s)
        for x, path in zip(s.x, s.sources):
            on_disk = torch.from_numpy(np.asarray(Image.open(path), dtype=np.float32) / 255.0)
            assert torch.equal(x[0], on_disk), path
    ood = load_dataset({"name": "image_folder", "path": str(animal_folder), "as_ood": True}, seed=0)["test"]
    assert [p.split("/")[-1] for p in ood.sources] == [f"a{i:03d}.png" for i in range(150)]
