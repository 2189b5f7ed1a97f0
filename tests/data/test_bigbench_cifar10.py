"""CIFAR-10's routes (cache, torchvision files, BIG-bench archive, torchvision's download) on small synthetic files the
test makes (no download), and the real archive when a user has it (optional: skipped with the reason otherwise)."""
from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np
import pytest
import torch

from uqcompress.data import bigbench, cifar10, load_dataset

from tests.data.real_bigbench import real_bigbench  # noqa: F401  (fixture)
from tests.data.synthetic_bigbench import make_archive

CLASSES = cifar10.CLASSES


@pytest.fixture
def archive(tmp_path, tmp_cache, monkeypatch):
    path = tmp_path / "bigbench-1.0.0.tar.gz"
    images, labels = make_archive(path)
    calls = []

    def fake_archive() -> Path:
        calls.append(1)
        return path

    monkeypatch.setattr(bigbench, "bigbench_archive", fake_archive)
    monkeypatch.setenv(bigbench.ENV_VAR, str(path))  # the archive route of cifar10.SOURCE is present
    return path, images, labels, calls


def test_read_task_files_extracts_only_the_task_and_caches_it(archive, tmp_cache):
    path, _, _, calls = archive
    files = bigbench.read_task_files("cifar10_classification", only=["base64/task.json"])
    assert list(files) == ["base64/task.json"]
    assert json.loads(files["base64/task.json"])["name"] == "base64"
    extracted = sorted(p.relative_to(tmp_cache / "bigbench" / "tasks").as_posix()
                       for p in (tmp_cache / "bigbench" / "tasks").rglob("*") if p.is_file())
    assert extracted == ["cifar10_classification/base64/task.json", "index.json"]  # the hex sibling stays packed
    assert not (tmp_cache / "escape.json").exists() and not (tmp_cache / "bigbench" / "escape.json").exists()
    assert bigbench.task_names() == ["cifar10_classification", "other_task"]
    n = len(calls)
    again = bigbench.read_task_files("cifar10_classification", only=["base64/task.json"])
    assert again == files and len(calls) == n  # served from disk, archive untouched
    everything = bigbench.read_task_files("cifar10_classification")
    assert sorted(everything) == ["base64/task.json", "hex/task.json", "task.json"]


def test_unknown_task_or_file_is_one_line_with_close_matches(archive):
    with pytest.raises(ValueError, match="no BIG-bench task 'cifar10_clasification'.*cifar10_classification"):
        bigbench.read_task_files("cifar10_clasification")
    with pytest.raises(ValueError, match="has no file 'nope.json'"):
        bigbench.read_task_files("cifar10_classification", only=["nope.json"])


def test_decode_cifar_json_roundtrips_pixels_and_labels(archive):
    _, images, labels, _ = archive
    raw = bigbench.read_task_files("cifar10_classification", only=["base64/task.json"])["base64/task.json"]
    x, y = cifar10.decode_task_json(raw)
    assert x.dtype == np.uint8 and x.shape == images.shape
    np.testing.assert_array_equal(x, images)  # PNG is lossless
    np.testing.assert_array_equal(y, labels)


def test_decode_rejects_a_label_that_is_not_one_hot():
    bad = json.dumps({"examples": [{"input": "", "target_scores": {c: 1 for c in CLASSES}}]}).encode()
    with pytest.raises(ValueError, match="not one-hot"):
        cifar10.decode_task_json(bad)


def test_checksum_guards_the_arrays_and_the_npz_cache(archive, tmp_cache, monkeypatch):
    _, images, labels, calls = archive
    with pytest.raises(ValueError, match="sha256 .* expected"):
        cifar10.cifar10_arrays()  # the synthetic archive is not the real CIFAR-10
    monkeypatch.setattr(cifar10, "SHA256", cifar10.arrays_sha256(images, labels))
    x, y = cifar10.cifar10_arrays()
    np.testing.assert_array_equal(x, images)
    npz = tmp_cache / "datasets" / "cifar10_test.npz"
    assert npz.is_file()
    n = len(calls)
    x2, _ = cifar10.cifar10_arrays()  # from the npz only
    assert len(calls) == n and np.array_equal(x2, x)
    npz.write_bytes(b"garbage")  # a corrupt cache entry is decoded again, not trusted
    x3, _ = cifar10.cifar10_arrays()
    assert np.array_equal(x3, x)


def test_arrays_sha256_depends_on_every_byte_and_the_shape():
    x = np.zeros((2, 32, 32, 3), np.uint8)
    y = np.array([0, 1])
    base = cifar10.arrays_sha256(x, y)
    x2 = x.copy()
    x2[1, 5, 5, 2] = 1
    assert cifar10.arrays_sha256(x2, y) != base
    assert cifar10.arrays_sha256(x.reshape(1, 2, 32, 32, 3)[0], y) == base
    assert cifar10.arrays_sha256(x.reshape(2, 32, 96, 1), y) != base


def test_cifar10_loader_splits_stratified_deterministic_and_disjoint(archive, monkeypatch):
    _, images, labels, _ = archive
    monkeypatch.setattr(cifar10, "SHA256", cifar10.arrays_sha256(images, labels))
    cfg = {"name": "cifar10", "splits": {"fit": 1 / 3, "calibration": 1 / 3, "test": 1 / 3}}
    d = load_dataset(cfg, seed=0)
    assert d.image_shape == (3, 32, 32) and d.num_classes == 10 and d.class_names == CLASSES
    assert {k: len(s) for k, s in d.splits.items()} == {"fit": 10, "calibration": 10, "test": 10}
    for s in d.splits.values():
        assert sorted(s.y.tolist()) == list(range(10))  # one image per class in each split
        assert s.x.dtype == torch.float32 and 0 <= float(s.x.min()) and float(s.x.max()) <= 1
    rows = {k: {hashlib.sha1(im.numpy().tobytes()).hexdigest() for im in s.x} for k, s in d.splits.items()}
    assert not (rows["fit"] & rows["test"]) and not (rows["calibration"] & rows["test"])
    again = load_dataset(cfg, seed=0)
    assert torch.equal(again["test"].x, d["test"].x)
    other = load_dataset(cfg, seed=1)
    assert not torch.equal(other["test"].x, d["test"].x)
    # fractions may leave a remainder out; over 1 is an error naming the fractions
    part = load_dataset({"name": "cifar10", "splits": {"fit": 1 / 3, "test": 1 / 3}}, seed=0)
    assert {k: len(s) for k, s in part.splits.items()} == {"fit": 10, "test": 10}
    with pytest.raises(ValueError, match="sum to at most 1"):
        load_dataset({"name": "cifar10", "splits": {"fit": 0.8, "test": 0.8}}, seed=0)


def test_env_var_names_a_local_archive(tmp_path, monkeypatch):
    path = tmp_path / "bb.tar.gz"
    path.write_bytes(b"x")
    monkeypatch.setenv(bigbench.ENV_VAR, str(path))
    assert bigbench.bigbench_archive() == path
    monkeypatch.setenv(bigbench.ENV_VAR, str(tmp_path / "nope.tar.gz"))
    with pytest.raises(bigbench.BigBenchUnavailable, match="is not a file"):
        bigbench.bigbench_archive()


def test_unreadable_archive_says_delete_it(tmp_path, tmp_cache, monkeypatch):
    bad = tmp_path / "bad.tar.gz"
    bad.write_bytes(b"not a tarball at all")
    monkeypatch.setattr(bigbench, "bigbench_archive", lambda: bad)
    with pytest.raises(bigbench.BigBenchUnavailable, match="unreadable.*delete it"):
        bigbench.read_task_files("cifar10_classification")


def test_real_cifar10_from_the_real_archive_has_1000_per_class_and_passes_checksum(real_bigbench):
    x, y = cifar10.cifar10_arrays()  # extracted from the real archive, decoded, checked against cifar10.SHA256
    assert x.shape == (10000, 32, 32, 3) and x.dtype == np.uint8
    assert np.bincount(y).tolist() == [1000] * 10
    assert cifar10.arrays_sha256(x, y) == cifar10.SHA256
    d = load_dataset({"name": "cifar10"}, seed=0)
    assert {k: len(s) for k, s in d.splits.items()} == {"fit": 1500, "calibration": 1000, "test": 2000}


# ---- the other routes of cifar10.SOURCE ---------------------------------------------------------------------------
def _test_batch(n: int = 20, seed: int = 0) -> tuple[bytes, np.ndarray, np.ndarray]:
    """A CIFAR-10 python test_batch (pickled dict of a (N, 3072) uint8 array and a label list), as torchvision reads."""
    import pickle

    rng = np.random.default_rng(seed)
    images = rng.integers(0, 256, size=(n, 32, 32, 3), dtype=np.uint8)
    labels = np.arange(n) % 10
    data = images.transpose(0, 3, 1, 2).reshape(n, -1)  # CIFAR's layout: 1024 R, then G, then B, per row
    raw = pickle.dumps({b"batch_label": b"testing batch 1 of 1", b"labels": labels.tolist(), b"data": data,
                        b"filenames": [b"x.png"] * n})
    return raw, images, labels


@pytest.fixture
def test_batch(monkeypatch):
    raw, images, labels = _test_batch()
    monkeypatch.setattr(cifar10, "TEST_BATCH_MD5", hashlib.md5(raw).hexdigest())
    return raw, images, labels


def test_data_root_reads_torchvision_folder_or_tarball(tmp_path, tmp_cache, test_batch):
    import tarfile

    raw, images, labels = test_batch
    folder = tmp_path / "tv" / cifar10.TV_FOLDER
    folder.mkdir(parents=True)
    (folder / "test_batch").write_bytes(raw)
    x, y, where = cifar10.cifar10_with_source({"root": str(tmp_path / "tv"), "download": False})
    np.testing.assert_array_equal(x, images)  # channel order and layout as torchvision decodes them
    np.testing.assert_array_equal(y, labels)
    assert where.startswith("torchvision's CIFAR-10 files:")
    tgz = tmp_path / "cifar-10-python.tar.gz"
    with tarfile.open(tgz, "w:gz") as tar:
        tar.add(folder / "test_batch", arcname=f"{cifar10.TV_FOLDER}/test_batch")
    x2, _ = cifar10.cifar10_arrays({"root": str(tgz), "download": False})
    np.testing.assert_array_equal(x2, images)
    with pytest.raises(FileNotFoundError, match=r"data.root=.*nope is neither cifar-10-python.tar.gz nor a folder"):
        cifar10.cifar10_arrays({"root": str(tmp_path / "nope")})


def test_a_test_batch_with_other_bytes_or_code_is_refused(tmp_path, tmp_cache):
    import pickle

    raw, _, _ = _test_batch()
    with pytest.raises(ValueError, match="not CIFAR-10's test_batch"):
        cifar10.read_test_batch(raw, "x")  # md5 is torchvision's, not this synthetic batch's
    evil = pickle.dumps({b"data": __import__("os").getcwd})  # a pickle that would call a function
    with pytest.raises(pickle.UnpicklingError, match="refusing to load"):
        cifar10._BatchUnpickler(__import__("io").BytesIO(evil), encoding="bytes").load()


def test_download_route_uses_torchvision_once_into_the_cache(tmp_cache, test_batch, monkeypatch):
    from uqcompress._compat import ensure_torchvision

    raw, images, _ = test_batch
    calls = []

    class FakeCIFAR10:  # stands in for torchvision.datasets.CIFAR10(root, train=False, download=True)
        def __init__(self, root, train, download):
            calls.append((root, train, download))
            folder = Path(root) / cifar10.TV_FOLDER
            folder.mkdir(parents=True, exist_ok=True)
            (folder / "test_batch").write_bytes(raw)

    monkeypatch.setattr(ensure_torchvision().datasets, "CIFAR10", FakeCIFAR10)
    x, _, where = cifar10.cifar10_with_source({})
    np.testing.assert_array_equal(x, images)
    assert calls == [(str(tmp_cache / "torchvision"), False, True)] and where.startswith("torchvision's download")
    x, _, where = cifar10.cifar10_with_source({})  # now the cached copy: no second download
    assert len(calls) == 1 and where.startswith("a copy cached")


def test_no_source_is_one_line_naming_every_route(tmp_cache, monkeypatch):
    from uqcompress._compat import ensure_torchvision
    from uqcompress.data.sources import SourceUnavailable

    monkeypatch.delenv(bigbench.ENV_VAR, raising=False)

    def offline(*a, **k):
        raise OSError("Name or service not known")

    monkeypatch.setattr(ensure_torchvision().datasets, "CIFAR10", offline)
    with pytest.raises(SourceUnavailable) as e:
        load_dataset({"name": "cifar10"}, seed=0)
    msg = str(e.value)
    assert "\n" not in msg and "UQCOMPRESS_BIGBENCH_ARCHIVE" in msg and "data.root=" in msg
    assert "torchvision's download" in msg and "(tried: OSError: Name or service not known)" in msg
    with pytest.raises(SourceUnavailable, match=r"\(4\) torchvision's download: data.download=true") as e:
        load_dataset({"name": "cifar10", "download": False}, seed=0)
    assert "tried" not in str(e.value)  # download=false: the route is named, not tried
