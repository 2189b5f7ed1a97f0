"""Issue 16 case 4: a selector calibrated on too few samples is warned about with the number, and a data set with
fewer than 2 classes is refused in one line naming it (before any model is trained).

Before (main 2e17459): a coverage selector calibrated on 1 sample gave a test coverage of 0.007 against a 0.9 target,
no warning; a one-class image folder "succeeded" with accuracy 1.0 and NLL -0.0.
"""
from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image
from torch import nn

import uqcompress
from uqcompress.validate import CalibrationWarning

OPTS = dict(progress=False, threads=1, latency={"repeats": 1, "warmup": 0, "batch_size": 32})


def test_coverage_selector_on_one_calibration_sample_warns_with_the_number():
    torch.manual_seed(0)
    x = torch.randn(400, 8)
    y = (x[:, 0] > 0).long()
    model = nn.Sequential(nn.Linear(8, 2)).eval()
    with pytest.warns(CalibrationWarning, match=r"calibration split has 1 sample: too few for selector=coverage "
                                                r"target=0.9 \(1 x 0.1 = 0.1 expected .* at least 100 calibration"):
        uqcompress.evaluate(model, (x[:1], y[:1]), (x[100:], y[100:]), quant="none",
                            selector={"name": "coverage", "target": 0.9}, **OPTS)
    with pytest.warns(CalibrationWarning, match="calibration split has 99 samples"):
        uqcompress.evaluate(model, (x[:99], y[:99]), (x[100:], y[100:]), quant="none", **OPTS)
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("error", CalibrationWarning)  # 100 samples: 10 expected abstentions, no warning
        uqcompress.evaluate(model, (x[:100], y[:100]), (x[100:], y[100:]), quant="none", **OPTS)


def test_cli_warns_when_limit_leaves_a_tiny_calibration_split(cli, tmp_path):
    r = cli("limit=20", "fit_limit=20", "ood=none", "quant=none", "model.epochs=1", "plots=false", "progress=false",
            "latency.repeats=1", f"hydra.run.dir={tmp_path}")
    assert r.returncode == 0, r.stderr[-2000:]
    assert "CalibrationWarning: calibration split has 20 samples: too few for selector=coverage target=0.9 " \
           "(20 x 0.1 = 2 expected on the rarer side of the target, 10 needed: at least 100 calibration samples)" \
           in r.stderr


@pytest.fixture
def one_class_folder(tmp_path):
    root = tmp_path / "pets"
    (root / "cat").mkdir(parents=True)
    rng = np.random.default_rng(0)
    for i in range(30):
        Image.fromarray(rng.integers(0, 256, (12, 12), dtype=np.uint8)).save(root / "cat" / f"{i}.png")
    return root


def test_one_class_image_folder_is_refused_naming_it(cli, tmp_cache, tmp_path, one_class_folder):
    r = cli("data=image_folder", f"data.path={one_class_folder}", "quant=none", "progress=false",
            f"hydra.run.dir={tmp_path / 'run'}")
    assert r.returncode == 2, r.stderr[-2000:]
    assert r.stderr.strip().splitlines()[-1] == (
        f"uqcompress: error: data set '{one_class_folder}' has 1 class (label 'cat' in all 30 samples); a classifier "
        "needs at least 2: add samples of another class")
    assert not (tmp_cache / "models").exists()  # refused before training


def test_a_limit_that_leaves_one_class_says_so(tmp_path):
    from uqcompress.pipeline import load_data

    table = tmp_path / "t.csv"
    rows = [("a", "pos", "train"), ("b", "neg", "train"), ("c", "pos", "val"), ("d", "neg", "val"),
            ("e", "pos", "test"), ("f", "neg", "test")]
    table.write_text("text,label,split\n" + "".join(",".join(r) + "\n" for r in rows))
    cfg = {"data": {"name": "csv", "path": str(table), "split_column": "split"}, "ood": {"name": "none"}, "seed": 0,
           "selector": {"name": "threshold", "value": 0.5}}
    data, _ = load_data({**cfg, "limit": None})
    assert data.num_classes == 2
    with pytest.raises(ValueError, match=r"has samples of 1 of its 2 classes \(label 'pos' in all 3 samples\).*\(limit=1 keeps at most 1 "
                                         r"samples per split\)$"):
        load_data({**cfg, "limit": 1, "fit_limit": 1})  # the first row of each split: all 'pos'
