"""torchvision ResNets and timm models: random-weight builds through the pipeline on a few samples, weights from a
local state_dict the test saves (and clear errors for corrupt / mismatched files), the torch hub cache, and the
one-line offline error."""
from __future__ import annotations

import os
import subprocess
import sys
import urllib.error
from pathlib import Path

import pytest
import torch

from uqcompress._compat import ensure_torchvision
from uqcompress.data.base import DataBundle, Split
from uqcompress.models import BuildContext, build_model
from uqcompress.models import pretrained as P

ROOT = Path(__file__).resolve().parents[2]
TINY_TIMM = "test_efficientnet"  # a 0.36M-parameter timm test architecture
FAST = {"image_size": 32, "head_fit": {"epochs": 3}}


def _data(n: int = 8, c: int = 3, size: int = 32, k: int = 10) -> DataBundle:
    g = torch.Generator().manual_seed(0)
    splits = {s: Split(torch.rand(n, c, size, size, generator=g), torch.arange(n) % k)
              for s in ("fit", "calibration", "test")}
    return DataBundle("tiny", "image", k, splits, class_names=[str(i) for i in range(k)])


def _ctx() -> BuildContext:
    return BuildContext(seed=0, progress=False)


@pytest.fixture
def hub_dir(tmp_path, monkeypatch):
    """An empty torch hub cache, and no network: a download attempt raises like an offline machine."""
    old = torch.hub.get_dir()
    torch.hub.set_dir(str(tmp_path / "hub"))
    tried = []

    def offline(url, dst, *a, **kw):
        tried.append(url)
        raise urllib.error.URLError("[Errno -2] Name or service not known")

    monkeypatch.setattr(torch.hub, "download_url_to_file", offline)
    yield tmp_path / "hub", tried
    torch.hub.set_dir(old)


# ---- the pipeline on a few samples with random weights -----------------------------------------------------------

@pytest.mark.parametrize("model,quant", [("resnet18", "int8"), ("resnet50", "none"), ("timm", "int8")])
def test_pipeline_runs_with_random_weights(tmp_cache, tmp_path, model, quant):
    """... and deploy.export writes a SelectivePredictor that rebuilds the model and reproduces the run's scores."""
    from uqcompress.pipeline import load_data, run_config
    from uqcompress.predictor import SelectivePredictor

    mcfg = {"name": model, "pretrained": False, **FAST}
    if model == "timm":
        mcfg["arch"] = TINY_TIMM
    cfg = {"data": {"name": "mnist"}, "limit": 12, "fit_limit": 12, "model": mcfg, "quant": {"name": quant},
           "ood": {"name": "animal_mnist", "limit": 6}, "progress": False,
           "latency": {"batch_size": 2, "repeats": 1, "warmup": 0}}
    res = run_config({**cfg, "deploy": {"export": str(tmp_path / "p.pt")}})
    data, _ = load_data({**cfg, "seed": 0})
    labels, conf, accepted = SelectivePredictor.load(tmp_path / "p.pt").predict(data["test"].x)
    assert torch.equal(conf, res.compressed.confidence["test"])
    assert torch.equal(accepted, res.compressed.accept["test"])
    m = res.metrics
    assert 0 <= m["baseline.accuracy"] <= 1 and 0 <= m["compressed.flips"] <= 1
    assert "random init" in m["info.baseline.weights"]
    assert m["n_test"] == 12 and m["n_ood"] == 6
    if quant == "int8":
        assert m["compressed.model_size_bytes"] < m["baseline.model_size_bytes"]


def test_gray_mnist_is_repeated_to_rgb_and_resized_inside_the_module(tmp_cache):
    b = build_model({"name": "resnet18", "pretrained": False, "image_size": 40, "head_fit": {"epochs": 1}},
                    _data(c=1, size=28), _ctx())
    pre = b.module.preprocess
    assert pre.in_channels == 1 and pre.image_size == 40
    with torch.inference_mode():
        assert pre(torch.rand(2, 1, 28, 28)).shape == (2, 3, 40, 40)
    assert b.logits(torch.rand(2, 1, 28, 28)).shape == (2, 10)


# ---- weights from a local state_dict -------------------------------------------------------------------------------

def test_local_state_dict_is_loaded_exactly_and_a_fitting_classifier_is_kept(tmp_path, tmp_cache):
    tv = ensure_torchvision()
    torch.manual_seed(123)
    ref = tv.models.resnet18(num_classes=10).eval()
    path = tmp_path / "r18_10.pt"
    torch.save(ref.state_dict(), path)
    b = build_model({"name": "resnet18", "weights": str(path), "image_size": None}, _data(), _ctx())
    assert b.info["weights"] == str(path) and b.info["head"] == "pretrained classifier kept"
    x = torch.rand(3, 3, 32, 32)
    with torch.inference_mode():
        want = ref(b.module.preprocess(x))
        assert torch.allclose(b.logits(x), want, atol=1e-4)  # same network, same classifier


def test_local_imagenet_state_dict_gets_a_new_head_for_other_class_counts(tmp_path, tmp_cache):
    tv = ensure_torchvision()
    ref = tv.models.resnet18().eval()  # 1000 classes, like ImageNet weights
    path = tmp_path / "r18.pth"
    torch.save({"state_dict": ref.state_dict()}, path)  # a checkpoint dict is unwrapped
    b = build_model({"name": "resnet18", "weights": str(path), **FAST}, _data(), _ctx())
    assert "new head" in b.info["head"] and b.num_classes == 10
    assert torch.equal(b.module.backbone.conv1.weight, ref.conv1.weight)
    with pytest.raises(ValueError, match="model.head=keep but the resnet18 classifier .* has 1000 outputs .* 10 classes"):
        build_model({"name": "resnet18", "weights": str(path), "head": "keep", **FAST}, _data(), _ctx())


def test_mismatched_corrupt_and_unsafe_weight_files_are_clear_errors(tmp_path, tmp_cache):
    tv = ensure_torchvision()
    r18 = tmp_path / "r18.pt"
    torch.save(tv.models.resnet18().state_dict(), r18)
    with pytest.raises(ValueError, match=r"do not fit model 'resnet50': .*layer1.0.conv3.weight") as e:
        build_model({"name": "resnet50", "weights": str(r18), **FAST}, _data(), _ctx())
    assert "\n" not in str(e.value)
    sd = tv.models.resnet18().state_dict()
    sd["layer1.0.conv1.weight"] = torch.zeros(64, 64, 1, 1)
    torch.save(sd, tmp_path / "shape.pt")
    with pytest.raises(ValueError, match=r"layer1.0.conv1.weight has shape \(64, 64, 1, 1\) in the file but "
                                         r"\(64, 64, 3, 3\) in the model"):
        build_model({"name": "resnet18", "weights": str(tmp_path / "shape.pt"), **FAST}, _data(), _ctx())
    (tmp_path / "junk.pt").write_bytes(b"this is not a checkpoint")
    with pytest.raises(ValueError, match="corrupt or not a plain-tensor checkpoint"):
        build_model({"name": "resnet18", "weights": str(tmp_path / "junk.pt"), **FAST}, _data(), _ctx())
    torch.save({"weights": [1, 2]}, tmp_path / "nosd.pt")
    with pytest.raises(ValueError, match="does not hold a state_dict"):
        build_model({"name": "resnet18", "weights": str(tmp_path / "nosd.pt"), **FAST}, _data(), _ctx())
    torch.save(Path("x"), tmp_path / "pickle.pt")  # an arbitrary object: refused by weights_only=True
    with pytest.raises(ValueError, match="corrupt or not a plain-tensor checkpoint"):
        build_model({"name": "resnet18", "weights": str(tmp_path / "pickle.pt"), **FAST}, _data(), _ctx())
    with pytest.raises(FileNotFoundError, match="weights file not found"):
        build_model({"name": "resnet18", "weights": str(tmp_path / "missing.pt"), **FAST}, _data(), _ctx())
    with pytest.raises(ValueError, match="'IMAGENET9K' is not a resnet18 weights tag .* IMAGENET1K_V1, DEFAULT"):
        build_model({"name": "resnet18", "weights": "IMAGENET9K", **FAST}, _data(), _ctx())


def test_timm_weights_file_and_unknown_arch(tmp_path, tmp_cache):
    import timm

    ref = timm.create_model(TINY_TIMM, num_classes=10).eval()
    torch.save(ref.state_dict(), tmp_path / "t.pt")
    b = build_model({"name": "timm", "arch": TINY_TIMM, "weights": str(tmp_path / "t.pt"), "image_size": None},
                    _data(), _ctx())
    x = torch.rand(2, 3, 32, 32)
    with torch.inference_mode():
        assert torch.allclose(b.logits(x), ref(b.module.preprocess(x)), atol=1e-4)
    with pytest.raises(ValueError, match="not a timm model; close matches: test_efficientnet"):
        build_model({"name": "timm", "arch": "test_efficientnt", "pretrained": False}, _data(), _ctx())
    with pytest.raises(ValueError, match="needs model.arch=NAME"):
        build_model({"name": "timm", "pretrained": False}, _data(), _ctx())


# ---- hub weights: cached -> loaded without network; uncached + offline -> one line naming the path ------------------

def test_torchvision_weights_come_from_the_hub_cache_without_network(hub_dir, tmp_cache):
    tv = ensure_torchvision()
    hub, tried = hub_dir
    w = tv.models.ResNet18_Weights.IMAGENET1K_V1
    path = P.hub_checkpoint_path(w.url)
    assert path.parent == hub / "checkpoints" and path.name == "resnet18-f37072fd.pth"
    torch.manual_seed(5)
    ref = tv.models.resnet18()
    path.parent.mkdir(parents=True)
    torch.save(ref.state_dict(), path)  # stands in for the real download
    b = build_model({"name": "resnet18", "pretrained": True, "weights": "DEFAULT", **FAST}, _data(), _ctx())
    assert tried == [] and b.info["weights"] == "torchvision resnet18 IMAGENET1K_V1"
    assert torch.equal(b.module.backbone.layer4[1].conv2.weight, ref.layer4[1].conv2.weight)


def test_offline_uncached_torchvision_is_one_line_naming_the_cache_path(hub_dir, tmp_cache):
    hub, tried = hub_dir
    with pytest.raises(FileNotFoundError) as e:
        build_model({"name": "resnet50", "pretrained": True, **FAST}, _data(), _ctx())
    msg = str(e.value)
    assert "\n" not in msg and str(hub / "checkpoints" / "resnet50-11ad3fa6.pth") in msg
    assert "model.weights=PATH" in msg and "model.pretrained=false" in msg and "efficientnet_lite0" in msg
    assert tried and not (hub / "checkpoints" / "resnet50-11ad3fa6.pth").exists()


def test_offline_uncached_timm_is_one_line_naming_the_cache_path(tmp_cache, monkeypatch):
    import timm.models._builder as builder
    import timm.models._hub as hub

    def offline(*a, **kw):
        raise OSError("We couldn't connect to 'https://huggingface.co' to load the files")

    monkeypatch.setattr(hub, "hf_hub_download", offline)
    monkeypatch.setattr(builder, "load_state_dict_from_url", offline)
    with pytest.raises(FileNotFoundError) as e:
        build_model({"name": "timm", "arch": TINY_TIMM, "pretrained": True}, _data(), _ctx())
    msg = str(e.value)
    assert "\n" not in msg and "models--timm--test_efficientnet.r160_in1k" in msg and "model.weights=PATH" in msg


@pytest.mark.slow
def test_cli_resnet50_int8_fails_offline_with_one_line(tmp_path):
    env = {**os.environ, "PYTHONPATH": str(ROOT), "TORCH_HOME": str(tmp_path / "torch"),
           "UQCOMPRESS_CACHE": str(tmp_path / "cache"), "https_proxy": "http://127.0.0.1:9",
           "HTTPS_PROXY": "http://127.0.0.1:9", "no_proxy": "", "NO_PROXY": ""}
    r = subprocess.run([sys.executable, "-m", "uqcompress", "model=resnet50", "quant=int8", "progress=false",
                        f"hydra.run.dir={tmp_path / 'run'}"], cwd=tmp_path, env=env, capture_output=True,
                       text=True, timeout=300)
    assert r.returncode == 2, r.stderr[-2000:]
    lines = [ln for ln in r.stderr.splitlines() if ln.startswith("uqcompress: error:")]
    assert len(lines) == 1 and "Traceback" not in r.stderr
    assert str(tmp_path / "torch" / "hub" / "checkpoints" / "resnet50-11ad3fa6.pth") in lines[0]
