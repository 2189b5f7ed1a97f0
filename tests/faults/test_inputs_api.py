"""Issue 16 case 8: ``uqcompress.evaluate`` with float16 / float64 inputs or inputs of the wrong width.

Before (main 2e17459): float16 inputs and 7 features for an 8-feature model both died with a raw
``mat1 and mat2`` RuntimeError (53 lines). Now floating inputs are cast to the model's weight dtype (float16 / bfloat16
-> float32 exactly, float64 -> float32 rounded to float32 precision) and a wrong width or channel count is one line
naming what the model's first layer expects and what it got.
"""
from __future__ import annotations

import pytest
import torch
from torch import nn

import uqcompress

OPTS = dict(progress=False, threads=1, latency={"repeats": 1, "warmup": 0, "batch_size": 32})


def data(n: int, seed: int, width: int = 8):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, width, generator=g)
    return x, (x[:, 0] + 0.5 * x[:, 1] > 0).long()


@pytest.fixture(scope="module")
def model():
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(8, 16), nn.ReLU(), nn.Linear(16, 2)).eval()


def run(model, cal, test, **kw):
    return uqcompress.evaluate(model, cal, test, quant="none", selector={"name": "coverage", "target": 0.8},
                               **OPTS, **kw).metrics


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16, torch.float64])
def test_low_and_high_precision_inputs_give_the_float32_results(model, dtype):
    (xc, yc), (xt, yt) = data(200, 1), data(300, 2)
    xc, xt = xc.to(dtype), xt.to(dtype)
    got = run(model, (xc, yc), (xt, yt))
    want = run(model, (xc.float(), yc), (xt.float(), yt))  # what the cast must be: the same values in float32
    for k in ("baseline.accuracy", "baseline.nll", "baseline.ece", "compressed.coverage", "baseline.aurc"):
        assert got[k] == want[k], k


def test_a_float64_model_gets_float64_inputs(model):
    m64 = nn.Sequential(nn.Linear(8, 16), nn.ReLU(), nn.Linear(16, 2)).double().eval()
    m64.load_state_dict({k: v.double() for k, v in model.state_dict().items()})
    (xc, yc), (xt, yt) = data(200, 1), data(300, 2)
    got = run(m64, (xc, yc), (xt, yt))  # float32 inputs, float64 weights: cast up, exactly
    assert got["baseline.accuracy"] == run(model, (xc, yc), (xt, yt))["baseline.accuracy"]


def one_line_error(*args, **kw) -> str:
    with pytest.raises(ValueError) as e:
        run(*args, **kw)
    assert "\n" not in str(e.value)
    return str(e.value)


def test_wrong_feature_width_names_expected_and_actual(model):
    msg = one_line_error(model, data(200, 1, width=7), data(300, 2, width=7))
    assert msg == ("calibration inputs have shape (200, 7) and dtype float32: width 7, but the model's first layer "
                   "Linear(in_features=8) expects width 8 in the last dimension")


def test_a_split_of_another_width_than_calibration_is_refused(model):
    msg = one_line_error(model, data(200, 1), data(300, 2, width=9))
    assert msg == ("test inputs have shape (300, 9) but calibration inputs have (200, 8): the same rank and width "
                   "(dimension 1) are needed")
    msg = one_line_error(model, data(200, 1), data(300, 2), ood=torch.randn(50, 6))
    assert msg.startswith("ood inputs have shape (50, 6) but calibration inputs have (200, 8)")


def test_wrong_image_channels_name_the_first_conv():
    cnn = nn.Sequential(nn.Conv2d(3, 4, 3), nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(4, 2)).eval()
    g = torch.Generator().manual_seed(0)
    x, y = torch.rand(40, 1, 12, 12, generator=g), torch.arange(40) % 2
    msg = one_line_error(cnn, (x, y), (x, y))
    assert msg == ("calibration inputs have shape (40, 1, 12, 12) and dtype float32, but the model's first layer "
                   "Conv2d(in_channels=3) expects (N, 3, H, W)")


def test_integer_token_ids_are_not_cast():
    class Bag(nn.Module):
        def __init__(self):
            super().__init__()
            self.emb, self.out = nn.EmbeddingBag(20, 8), nn.Linear(8, 2)

        def forward(self, ids):
            return self.out(self.emb(ids))

    torch.manual_seed(0)
    ids = torch.randint(0, 20, (120, 5))
    y = (ids[:, 0] < 10).long()
    m = run(Bag().eval(), (ids[:60], y[:60]), (ids[60:], y[60:]))
    assert 0 <= m["baseline.accuracy"] <= 1


def test_a_model_with_one_output_is_refused_with_the_fix():
    one = nn.Linear(8, 1).eval()
    msg = one_line_error(one, data(50, 1), data(50, 2))
    assert msg.startswith("model returns 1 logit per sample; uqcompress needs one logit per class")


def test_options_are_checked_before_compressing(model):
    from uqcompress.validate import ConfigError

    with pytest.raises(ConfigError, match=r"^2 problems in the config: seed=-1 must be a whole number >= 0; selector "
                                          r"'coverage' has no option 'targt'; its options: target \(did you mean "
                                          r"selector.target\?\)$"):
        uqcompress.evaluate(model, data(50, 1), data(50, 2), selector={"name": "coverage", "targt": 0.5}, seed=-1,
                            progress=False)
