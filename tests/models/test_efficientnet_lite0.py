"""EfficientNet-Lite0: strict load of the packaged ImageNet weights, a real-image sanity check, head adaptation
with cached features, and int8 FX on the whole module (preprocessing included)."""
from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import pytest
import torch

from uqcompress.data.base import DataBundle, Split
from uqcompress.models import BuildContext, build_model
from uqcompress.models import heads
from uqcompress.runner import Runner
from uqcompress.models.efficientnet_lite import (LITE_MEAN, LITE_STD, VARIANTS, EfficientNetLite, EfficientNetLite0,
                                                 imagenet_weights_path, load_imagenet, relu6, round_filters)

HOPPER = Path(__import__("matplotlib").get_data_path()) / "sample_data" / "grace_hopper.jpg"
MILITARY_UNIFORM = 652  # ImageNet-1k class index


def test_every_key_of_the_packaged_state_dict_matches():
    sd = torch.load(imagenet_weights_path(), map_location="cpu", weights_only=True)
    model = EfficientNetLite0()
    assert set(model.state_dict()) == set(sd)  # no missing, no unexpected keys
    for k, v in model.state_dict().items():
        assert v.shape == sd[k].shape, k
    m = load_imagenet()  # strict=True inside
    assert sum(p.numel() for p in m.parameters()) == 4_652_008
    assert torch.equal(m._conv_stem.weight, sd["_conv_stem.weight"])


@pytest.mark.parametrize("name", ["efficientnet_lite1", "efficientnet_lite2"])
def test_lite1_and_lite2_packages_load_strictly_into_the_scaled_structure(name):
    v = VARIANTS[name]
    sd = torch.load(imagenet_weights_path(name), map_location="cpu", weights_only=True)
    model = EfficientNetLite(1000, 0.2, v.width, v.depth)
    assert set(model.state_dict()) == set(sd) and len(model._blocks) == 21
    for k, t in model.state_dict().items():
        assert t.shape == sd[k].shape, k
    assert sum(p.numel() for p in load_imagenet(name=name).parameters()) == v.params


def test_round_filters_is_tf_efficientnets_rule():
    # hand computation: 112 x 1.1 = 123.2 -> int(127.2) // 8 * 8 = 120 (>= 90% of 123.2); 16 x 1.1 = 17.6 -> 16
    assert [round_filters(c, 1.1) for c in (16, 24, 40, 80, 112, 192, 320)] == [16, 24, 48, 88, 120, 208, 352]
    assert round_filters(40, 1.0) == 40


@pytest.mark.skipif(not HOPPER.is_file(), reason="matplotlib sample image missing")
@pytest.mark.parametrize("name", list(VARIANTS))
def test_imagenet_prediction_on_a_real_photo(name):
    from PIL import Image

    img = Image.open(HOPPER).convert("RGB")
    w, h = img.size
    s = min(w, h)
    img = img.crop(((w - s) // 2, (h - s) // 2, (w - s) // 2 + s, (h - s) // 2 + s)).resize((224, 224), Image.BICUBIC)
    x = torch.from_numpy(np.asarray(img)).permute(2, 0, 1)[None].float() / 255
    pre = heads.Preprocess(3, None, VARIANTS[name].resolution, LITE_MEAN, LITE_STD)
    with torch.inference_mode():
        p = load_imagenet(name=name)(pre(x)).softmax(-1)[0]
    if name == "efficientnet_lite0":
        assert int(p.argmax()) == MILITARY_UNIFORM  # Grace Hopper in uniform: the classic check of ported weights
        assert float(p[MILITARY_UNIFORM]) > 0.2
    else:  # measured: Lite1 at 240 px ranks it 3rd (book jacket, comic book), Lite2 at 260 px 1st (p 0.12)
        assert MILITARY_UNIFORM in p.topk(3).indices.tolist() and float(p[MILITARY_UNIFORM]) > 0.05


def _tiny_data(n: int = 10, c: int = 3, size: int = 32, k: int = 3, seed: int = 0) -> DataBundle:
    g = torch.Generator().manual_seed(seed)
    splits = {}
    for name in ("fit", "calibration", "test"):
        y = torch.arange(n) % k
        # class-dependent colour so that a head can learn something from frozen features
        x = torch.rand(n, c, size, size, generator=g) * 0.3 + (y.float() / k).view(-1, 1, 1, 1) * 0.7
        splits[name] = Split(x, y)
    return DataBundle("tiny", "image", k, splits, class_names=[str(i) for i in range(k)])


def test_head_fit_on_frozen_cached_features_and_features_computed_once(tmp_cache, monkeypatch):
    calls = []
    real = Runner.features

    def counting(self, bundle, x, **kw):
        calls.append(len(x))
        return real(self, bundle, x, **kw)

    monkeypatch.setattr(Runner, "features", counting)
    data = _tiny_data()
    cfg = {"name": "efficientnet_lite0", "image_size": 64, "head_fit": {"epochs": 100, "lr": 0.01}}
    b = build_model(cfg, data, BuildContext(progress=False))
    assert b.head == "head.1" and b.num_classes == 3 and calls == [10]
    assert "ImageNet" in b.info["weights"] and "new head" in b.info["head"]
    backbone = load_imagenet()
    assert torch.equal(b.module.backbone._conv_stem.weight, backbone._conv_stem.weight)  # frozen
    assert isinstance(b.module.get_submodule("head.0"), torch.nn.Dropout)  # MC-dropout has something to sample
    with torch.inference_mode():
        acc = float((b.logits(data["test"].x).argmax(1) == data["test"].y).float().mean())
    assert acc >= 0.8  # the colour cue is learnable from ImageNet features (chance: 0.33)
    again = build_model(cfg, data, BuildContext(progress=False))
    assert calls == [10] and again.fingerprint == b.fingerprint  # features and head came from the cache
    other = build_model({**cfg, "image_size": 48}, data, BuildContext(progress=False))
    assert calls == [10, 10] and other.fingerprint != b.fingerprint


def test_gray_small_inputs_are_adapted_inside_the_module(tmp_cache):
    data = _tiny_data(c=1, size=28)
    b = build_model({"name": "efficientnet_lite0", "image_size": 32, "head_fit": {"epochs": 2}}, data,
                    BuildContext(progress=False))
    assert b.module.preprocess.in_channels == 1
    assert b.logits(torch.rand(2, 1, 28, 28)).shape == (2, 3)


def test_int8_fx_traces_fuses_and_tracks_fp32(tmp_cache):
    from uqcompress.compress import compress

    data = _tiny_data(n=16)
    b = build_model({"name": "efficientnet_lite0", "image_size": 64, "head_fit": {"epochs": 30}}, data,
                    BuildContext(progress=False))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        q = compress(b, {"name": "int8", "calibration_samples": 16}, data["calibration"].x)
    mods = dict(q.module.named_modules())
    assert not any(isinstance(m, torch.nn.BatchNorm2d) for m in mods.values())  # BN folded into the convs
    from torch.ao.nn.intrinsic.quantized import ConvReLU2d as QConvReLU2d
    from torch.ao.nn.quantized import Conv2d as QConv2d

    qconvs = [m for m in mods.values() if isinstance(m, QConv2d)]
    assert len(qconvs) == 1 + 1 + 2 + 15 * 3 + 1  # preprocessing affine, stem, blocks (no expand in the first), head
    # every Conv-BN-ReLU6 became one fused int8 conv: stem, head conv, 15 expand and 16 depthwise convs
    assert sum(isinstance(m, QConvReLU2d) for m in qconvs) == 1 + 1 + 15 + 16
    assert not any(type(m) is torch.nn.Conv2d for m in mods.values())  # no conv left in float
    x = data["test"].x
    with torch.inference_mode():
        lf, lq = b.logits(x), q.logits(x)
    assert (lf.argmax(1) == lq.argmax(1)).float().mean() >= 0.9
    assert float((lf.softmax(1) - lq.softmax(1)).abs().max()) < 0.25


def test_relu6_is_exact_in_float_and_survives_deepcopy():
    import copy

    act = relu6()
    x = torch.linspace(-20, 20, 401)
    assert torch.equal(act(x), torch.nn.functional.relu6(x))
    assert type(act[0]) is torch.nn.ReLU  # what FX's Conv-BN-ReLU pattern needs
    assert torch.equal(copy.deepcopy(act)(x), act(x))


def test_int8_keeps_conv_bn_relu6_at_six_and_precise(tmp_cache):
    """Conv-BN-ReLU6 quantizes as one fused conv calibrated on [0, 6]; a plain ReLU6 would leave the observer on the
    pre-activation range (about [-75, 70] for the stem) and give [0, 6] a handful of levels."""
    from torch.ao.nn.intrinsic.quantized import ConvReLU2d as QConvReLU2d

    from uqcompress.compress import compress

    data = _tiny_data(n=16)
    b = build_model({"name": "efficientnet_lite0", "image_size": 64, "head_fit": {"epochs": 2}}, data,
                    BuildContext(progress=False))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        q = compress(b, {"name": "int8", "calibration_samples": 16}, data["calibration"].x)
    qm = dict(q.module.named_modules())
    stem = qm["backbone._conv_stem"]
    assert isinstance(stem, QConvReLU2d) and "backbone._act_stem.0" not in qm  # the ReLU was fused into the conv
    assert type(qm["backbone._act_stem.1"]) is torch.nn.Hardtanh  # runs on the int8 tensor, clamps at 6
    assert stem.zero_point == 0 and 127 * stem.scale == pytest.approx(6.0, rel=0.02)  # [0, 6] in 7 bits (x86)
    got, want = {}, {}
    qm["backbone._act_stem.1"].register_forward_hook(lambda m, i, o: got.update(q=o.dequantize()))  # returns None
    b.module.backbone._act_stem.register_forward_hook(lambda m, i, o: want.update(f=o))
    x = data["test"].x
    with torch.inference_mode():
        q.module(x)
        b.module(x)
    q_out, f_out = got["q"], want["f"]
    assert float(q_out.max()) <= 6.0 and float(f_out.max()) <= 6.0
    sqnr = 10 * torch.log10((f_out ** 2).mean() / ((f_out - q_out) ** 2).mean())
    assert sqnr > 25, f"stem output SQNR {sqnr:.1f} dB"


@pytest.mark.parametrize("quant", ["none", "int8"])
def test_predictor_file_rebuilds_without_the_weights_package(tmp_cache, tmp_path, monkeypatch, quant):
    """A saved SelectivePredictor of EfficientNet-Lite0 (float or int8 FX) reloads bit-identically from the
    architecture alone: the packaged ImageNet weights are not read at load time."""
    from uqcompress.compress import compress
    from uqcompress.models import efficientnet_lite as E
    from uqcompress.predictor import SelectivePredictor
    from uqcompress.selection import build_selector
    from uqcompress.uncertainty import build_scorer

    data = _tiny_data(n=16)
    cfg = {"name": "efficientnet_lite0", "image_size": 64, "head_fit": {"epochs": 5}}
    b = build_model(cfg, data, BuildContext(progress=False))
    if quant == "int8":
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            b = compress(b, {"name": "int8", "calibration_samples": 16}, data["calibration"].x)
    pred = SelectivePredictor(b, build_scorer({"name": "energy"}), build_selector({"name": "coverage"}),
                              spec={"model": cfg, "quant": {"name": quant}, "input_shape": [3, 32, 32]})
    out = pred.outputs(data["calibration"].x)
    pred.selector.fit(pred.scorer.score(out), pred.scorer.probs(out).argmax(-1) == data["calibration"].y, out)
    path = pred.save(tmp_path / "lite0.pt")
    monkeypatch.setattr(E, "load_imagenet", lambda *a, **k: pytest.fail("load read the ImageNet weights"))
    loaded = SelectivePredictor.load(path)
    x = data["test"].x
    for u, v in zip(pred.predict(x), loaded.predict(x)):
        assert torch.equal(u, v)
