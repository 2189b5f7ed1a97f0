"""Issue 27: predictor files that loaded as a silently different predictor, and inputs of the wrong kind.

Before (main abf16aa): 256 bytes flipped inside a weight record of an exported predictor loaded fine (``torch.load``
ignores the zip's CRCs) and changed its answers; a ``selector.threshold`` of NaN loaded and the predictor answered
nothing; ``predict(["a text"])`` on an image model died in conv2d with a raw TypeError. Now the file carries a sha256
digest of its content checked at load, a NaN threshold is refused, and text for an image model is one line.
"""
from __future__ import annotations

import json
import struct
import zipfile

import pytest
import torch

from uqcompress import predictor as P
from uqcompress.models import MODELS
from uqcompress.predictor import SelectivePredictor
from uqcompress.selection import build_selector
from uqcompress.uncertainty import build_scorer

SPEC = {"model": {"name": "small_cnn", "width": 8, "hidden": 16}, "input_shape": [1, 14, 14]}
X = torch.rand(200, 1, 14, 14, generator=torch.Generator().manual_seed(0))


@pytest.fixture
def saved(tmp_path):
    """(predictor, its file): an untrained small CNN, msp, a threshold at the calibration median."""
    torch.manual_seed(0)
    bundle = MODELS.get("small_cnn").rebuild_architecture(SPEC["model"], 10, (1, 14, 14))
    pred = SelectivePredictor(bundle, build_scorer({"name": "msp"}), build_selector({"name": "threshold",
                                                                                     "value": 0.0}), spec=SPEC)
    pred.selector.threshold = float(pred.scorer.score(pred.outputs(X)).median())
    return pred, pred.save(tmp_path / "p.pt")


def flip_in_largest_record(path, n: int = 256) -> str:
    """XOR ``n`` bytes in the middle of the largest tensor record of a torch.save zip; returns the record's name."""
    with zipfile.ZipFile(path) as z:
        info = max((i for i in z.infolist() if "/data/" in i.filename), key=lambda i: i.file_size)
    raw = bytearray(path.read_bytes())
    name_len, extra_len = struct.unpack("<HH", raw[info.header_offset + 26: info.header_offset + 30])
    start = info.header_offset + 30 + name_len + extra_len + info.file_size // 2 - n // 2
    raw[start: start + n] = bytes(b ^ 0x5A for b in raw[start: start + n])
    path.write_bytes(bytes(raw))
    return info.filename


def test_a_flipped_weight_record_is_refused_naming_the_file(saved):
    pred, path = saved
    flip_in_largest_record(path)
    obj = torch.load(path, weights_only=True)  # the file still loads as plain tensors: only the digest can tell
    clean = pred.model.state_dict()
    assert [k for k, v in obj["state_dict"].items() if not torch.equal(v, clean[k])]  # a weight really changed
    with pytest.raises(ValueError) as e:
        SelectivePredictor.load(path)
    assert str(e.value).startswith(f"{path} is corrupt: its content does not match the sha256 digest")
    assert "\n" not in str(e.value)


def test_an_untouched_file_still_loads_with_plain_torch_load_and_predicts_the_same(saved):
    pred, path = saved
    obj = torch.load(path, weights_only=True)
    assert obj["version"] == 3 and len(obj["digest"]) == 64
    assert all(torch.equal(a, b) for a, b in zip(pred.predict(X), SelectivePredictor.load(path).predict(X)))


def test_a_nan_threshold_is_refused(saved, tmp_path):
    pred, path = saved
    obj = torch.load(path, weights_only=True)
    cfg = json.loads(obj["config"])
    cfg["selector"]["threshold"] = float("nan")
    obj["config"] = json.dumps(cfg, sort_keys=True)
    if "digest" in obj:  # a file written that way, digest and all: the threshold itself must be refused
        obj["digest"] = P.payload_digest(obj)
    bad = tmp_path / "nan.pt"
    torch.save(obj, bad)
    with pytest.raises(ValueError, match=r"threshold is nan, not a number") as e:
        SelectivePredictor.load(bad)
    assert str(e.value).startswith(f"{bad} is a malformed SelectivePredictor file") and "\n" not in str(e.value)
    pred.selector.threshold = float("nan")
    with pytest.raises(ValueError, match=r"=nan must be a number|threshold is nan"):
        pred.save(tmp_path / "never.pt")
    assert not (tmp_path / "never.pt").exists()


def test_text_for_an_image_model_is_one_line(saved):
    pred, _ = saved
    with pytest.raises(ValueError) as e:
        pred.predict(["a text"])
    assert str(e.value) == ("this SelectivePredictor holds an image model: it takes a tensor or array of shape "
                            "(N, 1, 14, 14); got a list of str")
    labels, _, _ = pred.predict(X[:3].numpy())  # a numpy array is taken as the tensor it holds
    assert torch.equal(labels, pred.predict(X[:3])[0])
