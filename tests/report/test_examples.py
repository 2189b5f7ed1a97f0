"""predictions.csv rows: stable ids, readable inputs and class names; flipped examples; thumbnails."""
import base64
import io
import json
from types import SimpleNamespace

import numpy as np
import pandas as pd
import torch
from PIL import Image

from uqcompress.data.base import Split
from uqcompress.pipeline import predictions_frame
from uqcompress.report.examples import (TEXT_CHARS, flipped, input_texts, read_thumbnails, sample_ids, thumbnail,
                                        write_thumbnails)
from uqcompress.uncertainty.base import Outputs


def fake_eval(logits: dict, labels: dict, accept_below: float = 0.0):
    """A ModelEval-like object: what predictions_frame reads."""
    probs = {k: torch.softmax(torch.as_tensor(v, dtype=torch.float64), -1) for k, v in logits.items()}
    return SimpleNamespace(outputs={k: Outputs(torch.as_tensor(v), labels[k]) for k, v in logits.items()},
                           probs=probs, confidence={k: p.max(-1).values for k, p in probs.items()},
                           accept={k: p.max(-1).values >= accept_below for k, p in probs.items()})


def test_ids_are_stable_and_tied_to_content():
    x = torch.rand(5, 1, 4, 4)
    a, b = sample_ids("test", x), sample_ids("test", x.clone())
    assert a == b and len(set(a)) == 5
    assert [i.split("-")[1] for i in a] == ["0", "1", "2", "3", "4"]
    y = x.clone()
    y[3, 0, 0, 0] += 0.5  # one pixel of one sample
    c = sample_ids("test", y)
    assert [i for i, j in zip(a, c) if i != j] == [a[3]]
    assert sample_ids("ood", ["same text"])[0].split("-")[2] == sample_ids("test", ["same text"])[0].split("-")[2]


def test_inputs_texts_questions_and_paths():
    long = "word " * 100
    t = input_texts(["a\nshort  one", long])
    assert t[0] == "a short one" and len(t[1]) == TEXT_CHARS and t[1].endswith("…")
    q = input_texts([{"question": "2+2?", "options": ["3", "4"], "task": "math"}])
    assert q == ["2+2? [options: 3 | 4]"]
    assert input_texts(torch.zeros(2, 3)) is None
    assert input_texts(torch.zeros(2, 3), ["/d/a.png", "/d/b.png"]) == ["/d/a.png", "/d/b.png"]


def test_predictions_frame_adds_ids_inputs_and_class_names():
    y = torch.tensor([0, 1, 2, 1])
    base = fake_eval({"test": [[3, 0, 0], [0, 3, 0], [0, 0, 3], [3, 0, 0]], "ood": [[1, 0, 0], [0, 0, 1]]},
                     {"test": y, "ood": None})
    comp = fake_eval({"test": [[3, 0, 0], [3, 0, 0], [0, 0, 3], [0, 3, 0]], "ood": [[0, 1, 0], [0, 0, 1]]},
                     {"test": y, "ood": None})
    texts = ["the cat", "a dog", "x" * 300, "fish"]
    inputs = {"test": Split(texts, y), "ood": Split(["spam one", "spam two"])}
    f = predictions_frame(base, comp, inputs, ["cat", "dog", "fish"])
    assert list(f.columns[:3]) == ["split", "id", "index"]
    assert f["id"].tolist() == sample_ids("test", texts) + sample_ids("ood", ["spam one", "spam two"])
    assert f["input"].tolist()[:2] == ["the cat", "a dog"] and len(f["input"][2]) == TEXT_CHARS
    assert f["label_name"].tolist() == ["cat", "dog", "fish", "dog", "", ""]
    assert f["baseline_pred_name"].tolist() == ["cat", "dog", "fish", "cat", "cat", "fish"]
    assert f["compressed_pred_name"].tolist() == ["cat", "cat", "fish", "dog", "dog", "fish"]
    # the columns readers had before are all still there, with the same values
    old = predictions_frame(base, comp)
    assert list(old.columns) == ["split", "index", "label", "baseline_pred", "compressed_pred", "baseline_pmax",
                                 "compressed_pmax", "baseline_confidence", "compressed_confidence",
                                 "baseline_accepted", "compressed_accepted"]
    pd.testing.assert_frame_equal(f[old.columns], old)


def test_flipped_rows_are_exactly_the_correctness_changes():
    rng = np.random.default_rng(0)
    n = 400
    y = rng.integers(0, 3, n)
    pred = pd.DataFrame({"split": ["test"] * n, "label": y, "baseline_pred": rng.integers(0, 3, n),
                         "compressed_pred": rng.integers(0, 3, n), "compressed_confidence": rng.random(n)})
    rows = flipped(pred, limit=None)
    ok_b, ok_c = pred.baseline_pred == y, pred.compressed_pred == y
    assert set(rows.index) == set(np.flatnonzero(ok_b != ok_c))
    assert (rows.flip == np.where(ok_b[rows.index], "C→I", "I→C")).all()
    c2i = rows[rows.flip == "C→I"]
    assert list(rows.flip[: len(c2i)]) == ["C→I"] * len(c2i)  # C→I first, most confident first
    assert c2i.compressed_confidence.is_monotonic_decreasing
    assert len(flipped(pred, limit=7)) == 7


def _png(uri: str) -> np.ndarray:
    assert uri.startswith("data:image/png;base64,")
    return np.asarray(Image.open(io.BytesIO(base64.b64decode(uri.split(",", 1)[1]))))


def test_thumbnails_keep_pixels_and_are_written_for_flipped_images_only(tmp_path):
    img = torch.zeros(1, 4, 4)
    img[0, 1, 2] = 1.0
    a = _png(thumbnail(img, px=16))
    assert a.shape == (16, 16) and a[4:8, 8:12].min() == 255 and a.sum() == 255 * 16  # nearest-neighbour x4
    rgb = _png(thumbnail(torch.rand(3, 32, 32), px=72))
    assert rgb.shape == (64, 64, 3)
    x = torch.rand(4, 3, 8, 8)
    pred = pd.DataFrame({"split": "test", "id": sample_ids("test", x), "index": range(4), "label": [0, 1, 1, 0],
                         "baseline_pred": [0, 1, 0, 0], "compressed_pred": [0, 0, 1, 0],
                         "compressed_confidence": [0.9, 0.8, 0.7, 0.6]})
    path = write_thumbnails(tmp_path, pred, x)
    thumbs = read_thumbnails(tmp_path)
    assert json.loads(path.read_text()).keys() == thumbs.keys() == {pred.id[1], pred.id[2]}
    assert write_thumbnails(tmp_path / "t", pred, ["texts", "have", "no", "pixels"]) is None
    (tmp_path / "thumbnails.json").write_text("{broken")
    assert read_thumbnails(tmp_path) == {}
