"""data=npz / ood=npz: layouts, dtypes, labels, splits; CLI end to end on real digits stored as 3x20x24 RGB."""
import json

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from byo_helpers import one_thread  # noqa: F401  (fixture)
from uqcompress.data import load_dataset

pytestmark = pytest.mark.usefixtures("one_thread")

FAST = ["limit=300", "fit_limit=300", "model.epochs=6", "model.batch_size=32", "progress=false", "latency.repeats=2",
        "threads=1"]  # one thread: tiny models on a shared CPU train faster without thread contention


def npz(tmp_path, name="d.npz", **arrays):
    path = tmp_path / name
    np.savez(path, **arrays)
    return str(path)


def test_layouts_and_dtypes_give_the_same_images(tmp_path):
    rng = np.random.default_rng(0)
    nhwc = rng.integers(0, 256, (20, 20, 24, 3), dtype=np.uint8)
    y = np.arange(20) % 4
    ref = torch.from_numpy(nhwc.transpose(0, 3, 1, 2).astype(np.float32) / 255)
    variants = {
        "nhwc_uint8": dict(x=nhwc),
        "nchw_uint8": dict(x=nhwc.transpose(0, 3, 1, 2).copy()),
        "nhwc_float": dict(x=nhwc.astype(np.float32) / 255),
    }
    for name, arrays in variants.items():
        d = load_dataset({"name": "npz", "path": npz(tmp_path, f"{name}.npz", y=y, **arrays), "as_ood": True}, 0)
        assert d.image_shape == (3, 20, 24), name
        assert torch.allclose(d["test"].x, ref, atol=1e-6), name
        assert d["test"].y.tolist() == y.tolist()
    gray = load_dataset({"name": "npz", "path": npz(tmp_path, "g.npz", x=nhwc[..., 0], y=y)}, 0)
    assert gray.image_shape == (1, 20, 24) and gray.num_classes == 4
    with pytest.raises(ValueError, match=r"could be NCHW or NHWC; set data.layout"):
        load_dataset({"name": "npz", "path": npz(tmp_path, "amb.npz", x=np.zeros((4, 3, 5, 3), np.uint8), y=y[:4])}, 0)
    amb = load_dataset({"name": "npz", "path": str(tmp_path / "amb.npz"), "layout": "nhwc", "as_ood": True}, 0)
    assert amb.image_shape == (3, 3, 5)
    with pytest.raises(ValueError, match=r"x has shape \(4, 10\); expected images"):
        load_dataset({"name": "npz", "path": npz(tmp_path, "tab.npz", x=np.zeros((4, 10)), y=y[:4])}, 0)
    with pytest.raises(ValueError, match="images need 1 or 3 channels"):
        load_dataset({"name": "npz", "path": npz(tmp_path, "rgba.npz", x=np.zeros((4, 8, 8, 4), np.uint8),
                                                 y=y[:4])}, 0)


def test_labels_class_names_and_split_array(tmp_path):
    x = np.zeros((30, 8, 8), np.uint8)
    names = np.array(["cat", "dog", "emu"])
    d = load_dataset({"name": "npz", "path": npz(tmp_path, x=x, y=np.arange(30) % 3, class_names=names)}, 0)
    assert d.class_names == ["cat", "dog", "emu"] and "label_mapping" not in d.info
    s = load_dataset({"name": "npz", "path": npz(tmp_path, "s.npz", x=x, y=names[np.arange(30) % 3])}, 0)
    assert s.info["label_mapping"] == {"cat": 0, "dog": 1, "emu": 2}
    assert s["test"].y.tolist() and set(s["fit"].y.tolist()) == {0, 1, 2}
    # string labels in the order of data.class_names
    o = load_dataset({"name": "npz", "path": str(tmp_path / "s.npz"), "class_names": ["emu", "dog", "cat"]}, 0)
    assert o.info["label_mapping"] == {"emu": 0, "dog": 1, "cat": 2}
    split = np.array(["train"] * 10 + ["validation"] * 10 + ["test"] * 10)
    g = load_dataset({"name": "npz", "path": npz(tmp_path, "sp.npz", x=x, y=np.arange(30) % 3, part=split),
                      "split_column": "part"}, 0)
    assert {k: len(v) for k, v in g.splits.items()} == {"fit": 10, "calibration": 10, "test": 10}
    # only train + test given: calibration is carved out of train (fractions 0.6 : 0.2 of the train pool)
    split2 = np.array(["train"] * 24 + ["test"] * 12)
    h = load_dataset({"name": "npz", "path": npz(tmp_path, "sp2.npz", x=np.zeros((36, 8, 8)), y=np.arange(36) % 3,
                                                 part=split2), "split_column": "part"}, 0)
    assert {k: len(v) for k, v in h.splits.items()} == {"fit": 18, "calibration": 6, "test": 12}
    assert torch.bincount(h["calibration"].y).tolist() == [2, 2, 2]
    bad = np.array(["train"] * 29 + ["holdout"])
    with pytest.raises(ValueError, match=r"split value 'holdout' \(sample 29\) in 'part' is not one of"):
        load_dataset({"name": "npz", "path": npz(tmp_path, "b.npz", x=x, y=np.arange(30) % 3, part=bad),
                      "split_column": "part"}, 0)


def test_bad_npz_inputs(tmp_path):
    x = np.zeros((6, 4, 4), np.uint8)
    with pytest.raises(FileNotFoundError, match="does not exist"):
        load_dataset({"name": "npz", "path": str(tmp_path / "missing.npz")}, 0)
    with pytest.raises(ValueError, match=r"no label array 'y'; it has: x .*only for ood=npz"):
        load_dataset({"name": "npz", "path": npz(tmp_path, x=x)}, 0)
    assert load_dataset({"name": "npz", "path": str(tmp_path / "d.npz"), "as_ood": True}, 0)["test"].y is None
    with pytest.raises(ValueError, match=r"no array 'x'; it has: images, y"):
        load_dataset({"name": "npz", "path": npz(tmp_path, "k.npz", images=x, y=np.arange(6))}, 0)
    assert load_dataset({"name": "npz", "path": str(tmp_path / "k.npz"), "x_key": "images", "as_ood": True},
                        0).image_shape == (1, 4, 4)
    with pytest.raises(ValueError, match=r"label -1 \(sample 0\) in 'y' is negative"):
        load_dataset({"name": "npz", "path": npz(tmp_path, "n.npz", x=x, y=np.arange(6) - 1)}, 0)
    with pytest.raises(ValueError, match=r"label 5 is outside the 2 classes given by its 2 class names"):
        load_dataset({"name": "npz", "path": npz(tmp_path, "c.npz", x=x, y=np.arange(6),
                                                 class_names=np.array(["a", "b"]))}, 0)
    (tmp_path / "junk.npz").write_bytes(b"junk")
    with pytest.raises(ValueError, match=r"junk.npz: cannot read as .npz"):
        load_dataset({"name": "npz", "path": str(tmp_path / "junk.npz")}, 0)


def test_small_cnn_adapts_to_3x20x24(tmp_path):
    from uqcompress.models import BuildContext, build_model

    rng = np.random.default_rng(0)
    x = rng.integers(0, 256, (60, 20, 24, 3), dtype=np.uint8)
    d = load_dataset({"name": "npz", "path": npz(tmp_path, x=x, y=np.arange(60) % 5)}, 0)
    m = build_model({"name": "small_cnn", "epochs": 1, "batch_size": 32, "width": 8, "hidden": 16}, d,
                    BuildContext(progress=False))
    assert m.num_classes == 5
    assert m.module.features[0].in_channels == 3
    assert m.logits(d["test"].x).shape == (len(d["test"]), 5)


@pytest.fixture(scope="module")
def digits_npz(tmp_path_factory):
    """Real MNIST digits as uint8 NHWC 20x24 RGB (tinted) in an .npz, and animal silhouettes as a float NCHW OOD .npz."""
    root = tmp_path_factory.mktemp("npz")
    mn = load_dataset({"name": "mnist"}, 0)["fit"].head(600)
    x = F.interpolate(mn.x, size=(20, 24), mode="bilinear", antialias=True)
    x = x * torch.tensor([1.0, 0.8, 0.6]).view(1, 3, 1, 1)
    x = (x.permute(0, 2, 3, 1).numpy() * 255).round().astype(np.uint8)
    np.savez(root / "digits.npz", x=x, y=mn.y.numpy(), class_names=np.array([f"d{i}" for i in range(10)]))
    animals = load_dataset({"name": "animal_mnist"}, 0)["test"].x[:120].numpy()
    np.savez(root / "animals.npz", x=animals)  # float32 [0, 1], (N, 1, 28, 28): conformed to 3x20x24 by the pipeline
    return root


@pytest.mark.slow
def test_cli_npz_end_to_end_and_checkpoint_of_the_trained_model(cli, digits_npz, tmp_path, session_cache):
    """small_cnn trained on the npz, then the very weights it cached loaded back with model=checkpoint."""
    out = tmp_path / "run"
    common = ["data=npz", f"data.path={digits_npz / 'digits.npz'}", "ood=npz", f"ood.path={digits_npz / 'animals.npz'}",
              "quant=int8", *FAST]
    r = cli(*common, f"hydra.run.dir={out}")
    assert r.returncode == 0, r.stderr[-3000:]
    res = json.loads((out / "results.json").read_text())
    assert res["n_test"] == 120 and res["n_ood"] == 120
    assert 0.5 < res["baseline.accuracy"] <= 1 and 0.5 < res["compressed.accuracy"] <= 1
    assert res["compressed.model_size_bytes"] < 0.3 * res["baseline.model_size_bytes"]
    assert "data.label_mapping" not in res  # integer labels: no mapping to report

    weights = list((session_cache / "models" / "small_cnn").glob("*.pt"))
    assert weights, "small_cnn weights were not cached"
    latest = max(weights, key=lambda p: p.stat().st_mtime)
    ckpt = tmp_path / "trained.pt"  # a cache entry wraps the state_dict with what it is (uqcompress.cache)
    torch.save(torch.load(latest, weights_only=True)["payload"], ckpt)
    out2 = tmp_path / "ckpt"
    common = [a for a in common if not a.startswith("model.")]  # model=checkpoint trains nothing
    r2 = cli(*common, "model=checkpoint", f"model.path={ckpt}", "model.arch=small_cnn", f"hydra.run.dir={out2}")
    assert r2.returncode == 0, r2.stderr[-3000:]
    res2 = json.loads((out2 / "results.json").read_text())
    assert res2["config.model"] == "checkpoint" and res2["info.baseline.arch"] == "small_cnn"
    for k in ("baseline.accuracy", "baseline.ood_auroc", "baseline.coverage", "n_test"):
        assert res2[k] == pytest.approx(res[k], abs=1e-12), k
