"""data=hf_disk: a Hugging Face ``datasets`` folder (save_to_disk). ``datasets`` is optional: without it the loader
says how to install it; with it, text and image folders (Dataset and DatasetDict) are read offline."""
import sys

import numpy as np
import pytest
import torch

from uqcompress.data import load_dataset


def make(datasets, data: dict, features):
    """A ``datasets.Dataset`` built with an explicit fingerprint (what ``from_dict`` does, minus its dill-based
    hashing, which breaks on some pyarrow builds)."""
    table = datasets.table.InMemoryTable.from_pydict(features.encode_batch(data), schema=features.arrow_schema)
    return datasets.Dataset(table, info=datasets.DatasetInfo(features=features), fingerprint=f"t{id(table)}")


def test_missing_datasets_package_is_one_line(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "datasets", None)  # import datasets -> ImportError, installed or not
    with pytest.raises(ModuleNotFoundError) as e:
        load_dataset({"name": "hf_disk", "path": str(tmp_path)}, 0)
    assert str(e.value) == ("data=hf_disk needs the 'datasets' package; install it with: pip install datasets "
                            "(or in the uqcompress clone: .venv/bin/pip install -e '.[hf]')")
    with pytest.raises(FileNotFoundError, match="data=hf_disk: path '.*nope' does not exist"):
        load_dataset({"name": "hf_disk", "path": str(tmp_path / "nope")}, 0)


def test_text_dataset_dict_keeps_its_splits(tmp_path):
    datasets = pytest.importorskip("datasets")
    feats = datasets.Features({"sentence": datasets.Value("string"),
                               "label": datasets.ClassLabel(names=["neg", "pos"])})

    def part(n, off):
        return make(datasets, {"sentence": [f"s{i + off}" for i in range(n)], "label": [i % 2 for i in range(n)]},
                    feats)

    datasets.DatasetDict({"train": part(30, 0), "validation": part(10, 100), "test": part(12, 200)}).save_to_disk(
        str(tmp_path / "dd"))
    d = load_dataset({"name": "hf_disk", "path": str(tmp_path / "dd")}, 0)  # "sentence" found without config
    assert d.modality == "text" and d.class_names == ["neg", "pos"] and "label_mapping" not in d.info
    assert {k: len(s) for k, s in d.splits.items()} == {"fit": 30, "calibration": 10, "test": 12}
    assert d["test"].x == [f"s{i}" for i in range(200, 212)] and d["test"].y.tolist() == [i % 2 for i in range(12)]
    # train + test only: calibration carved from train
    datasets.DatasetDict({"train": part(40, 0), "test": part(12, 200)}).save_to_disk(str(tmp_path / "tt"))
    d2 = load_dataset({"name": "hf_disk", "path": str(tmp_path / "tt")}, 0)
    assert {k: len(s) for k, s in d2.splits.items()} == {"fit": 30, "calibration": 10, "test": 12}
    with pytest.raises(ValueError, match=r"no column 'txt' \(data.text_column\); it has: sentence, label"):
        load_dataset({"name": "hf_disk", "path": str(tmp_path / "dd"), "text_column": "txt"}, 0)
    ood = load_dataset({"name": "hf_disk", "path": str(tmp_path / "dd"), "as_ood": True, "label_column": None}, 0)
    assert len(ood["test"]) == 52 and ood["test"].y is None


def test_image_dataset_with_string_labels(tmp_path):
    datasets = pytest.importorskip("datasets")
    from PIL import Image

    rng = np.random.default_rng(0)
    imgs = [Image.fromarray(rng.integers(0, 255, (12, 10, 3), dtype=np.uint8)) for _ in range(20)]
    ds = make(datasets, {"img": imgs, "kind": ["cat", "dog"] * 10},
              datasets.Features({"img": datasets.Image(), "kind": datasets.Value("string")}))
    ds.save_to_disk(str(tmp_path / "im"))
    d = load_dataset({"name": "hf_disk", "path": str(tmp_path / "im"), "label_column": "kind", "image_size": 8}, 0)
    assert d.modality == "image" and d.image_shape == (3, 8, 8)
    assert d.info["label_mapping"] == {"cat": 0, "dog": 1}
    raw = load_dataset({"name": "hf_disk", "path": str(tmp_path / "im"), "label_column": "kind", "as_ood": True}, 0)
    assert torch.allclose(raw["test"].x[0], torch.from_numpy(np.asarray(imgs[0], np.float32) / 255).permute(2, 0, 1))
    gray = load_dataset({"name": "hf_disk", "path": str(tmp_path / "im"), "label_column": "kind", "channels": 1}, 0)
    assert gray.image_shape == (1, 12, 10)


def test_array_image_column(tmp_path):
    datasets = pytest.importorskip("datasets")
    pix = np.arange(12 * 20, dtype=np.uint8).reshape(12, 4, 5)
    feats = datasets.Features({"pixels": datasets.Array2D(shape=(4, 5), dtype="uint8"), "label": datasets.Value("int64")})
    make(datasets, {"pixels": pix.tolist(), "label": [i % 3 for i in range(12)]}, feats).save_to_disk(str(tmp_path / "a"))
    d = load_dataset({"name": "hf_disk", "path": str(tmp_path / "a"), "image_column": "pixels", "as_ood": True}, 0)
    assert d.image_shape == (1, 4, 5) and d.num_classes == 3
    assert torch.allclose(d["test"].x[:, 0], torch.from_numpy(pix.astype(np.float32) / 255))
