"""deploy: export -> load -> predict is bit-identical for every (model, scheme) pair that export accepts, including
``model=checkpoint`` (a state_dict with ``model.arch=small_cnn``, and a Hugging Face folder); loading needs neither
the data, the cache, nor the original checkpoint file / folder / hub; a file that is malformed is one line."""
from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import torch

from byo_helpers import sentences, tiny_bert_folder
from uqcompress.compress import SCHEMES, CompressContext, compress
from uqcompress.data.base import DataBundle, Split
from uqcompress.models import MODELS, BuildContext, build_model
from uqcompress.models.small_cnn import SmallCNN
from uqcompress.predictor import SelectivePredictor, check_exportable, payload_digest
from uqcompress.runner import Runner
from uqcompress.selection import build_selector
from uqcompress.uncertainty import build_scorer

CTX = CompressContext(progress=False, runner=Runner(progress=False, batch_size=16))
SCHEME_CFGS = {  # every registered scheme, shrunk to run in a second on a tiny model
    "none": {}, "fp16": {}, "bf16": {}, "amp": {}, "int8": {"calibration_samples": 16},
    "int8_dynamic": {}, "int8_weight_only": {}, "int4_weight_only": {"group_size": 8},
    "brevitas_w8a8": {"calibration_samples": 16}, "brevitas_w4a8": {"calibration_samples": 16},
    "brevitas_w4a4": {"calibration_samples": 16}, "prune_global_l1": {"amount": 0.3}, "prune_2of4": {},
    "drop_layers": {"n": 1},
    "chain": {"steps": [{"name": "prune_global_l1", "amount": 0.3}, {"name": "int8", "calibration_samples": 16}]},
    "prune_int8": {"steps": [{"name": "prune_global_l1", "amount": 0.5}, {"name": "int8", "calibration_samples": 16}]},
}


def test_the_matrix_covers_every_registered_scheme():
    assert set(SCHEME_CFGS) == set(SCHEMES.names())


def images(n: int = 24, c: int = 1, size: int = 14) -> torch.Tensor:
    return torch.rand(n, c, size, size, generator=torch.Generator().manual_seed(0))


def texts(n: int = 16) -> list[str]:
    return sentences(n, seed=1)[0]


@pytest.fixture(scope="module")
def bert_dir(tmp_path_factory):
    return tiny_bert_folder(tmp_path_factory.mktemp("deploy-bert"), train=False)


def _arch(name: str, cfg: dict, k: int, shape):
    torch.manual_seed(0)
    return MODELS.get(name).rebuild_architecture({"name": name, **cfg}, k, shape), {"name": name, **cfg}


def bundles(which: str, tmp_path: Path, bert_dir: Path):
    """(bundle, spec model config, inputs, input_shape, what to delete before load) for one model of the matrix."""
    if which == "small_cnn":
        b, cfg = _arch("small_cnn", {"width": 8, "hidden": 16}, 10, (1, 14, 14))
        return b, cfg, images(), [1, 14, 14], None
    if which in ("resnet18", "efficientnet_lite0"):
        b, cfg = _arch(which, {"image_size": 32, "pretrained": False}, 5, (3, 16, 16))
        return b, cfg, images(c=3, size=16), [3, 16, 16], None
    if which == "timm":
        pytest.importorskip("timm")
        b, cfg = _arch("timm", {"arch": "test_resnet", "image_size": 32}, 5, (3, 16, 16))
        return b, cfg, images(c=3, size=16), [3, 16, 16], None
    if which == "minilm":
        b, cfg = _arch("minilm", {"max_length": 16}, 3, None)
        return b, cfg, texts(), None, None
    if which == "checkpoint-state_dict":
        path = tmp_path / "ckpt" / "cnn.pt"
        path.parent.mkdir()
        torch.manual_seed(0)
        torch.save(SmallCNN(in_channels=1, num_classes=4, width=8, hidden=16).state_dict(), path)
        data = DataBundle("toy", "image", 4, {"test": Split(images(8, c=3), torch.arange(8) % 4)})
        cfg = {"name": "checkpoint", "path": str(path), "arch": "small_cnn", "mean": 0.5, "std": 0.25}
        return build_model(cfg, data, BuildContext(progress=False)), cfg, images(c=3), [3, 14, 14], path.parent
    if which in ("checkpoint-hf_folder", "hf_classifier"):
        folder = tmp_path / "hf"
        shutil.copytree(bert_dir, folder)
        t = texts()
        data = DataBundle("reviews", "text", 2, {"test": Split(t, torch.arange(len(t)) % 2)})
        cfg = ({"name": "checkpoint", "path": str(folder), "max_length": 16} if which.startswith("checkpoint")
               else {"name": "hf_classifier", "checkpoint": str(folder), "max_length": 16, "train_head": False})
        return build_model(cfg, data, BuildContext(progress=False)), cfg, t, None, folder
    raise AssertionError(which)


FAST = ["small_cnn", "checkpoint-state_dict", "checkpoint-hf_folder", "hf_classifier"]
SLOW = ["resnet18", "efficientnet_lite0", "timm", "minilm"]  # real architectures: a few seconds per scheme


def _round_trip(which: str, tmp_path: Path, bert_dir: Path) -> dict[str, str]:
    base, cfg, x, shape, delete = bundles(which, tmp_path, bert_dir)
    outcome, saved = {}, {}
    for scheme, opts in SCHEME_CFGS.items():
        qcfg = {"name": scheme, **opts}
        check_exportable({"model": cfg, "quant": qcfg, "deploy": {"export": "x.pt"}})  # export accepts the pair
        try:
            comp = compress(base, qcfg, x, CTX)
        except ValueError as e:  # the scheme does not apply to this model (e.g. drop_layers on a CNN): one line
            assert "\n" not in str(e)
            outcome[scheme] = "not applicable"
            continue
        pred = SelectivePredictor(comp, build_scorer({"name": "msp", "temperature": 1.3}),
                                  build_selector({"name": "threshold", "value": 0.4}),
                                  spec={"model": cfg, "input_shape": shape}, batch_size=8)
        saved[scheme] = (pred.save(tmp_path / f"{which}-{scheme}.pt"), pred.predict(x))
    if delete is not None:  # the file / folder the model was built from is not needed to load it
        shutil.rmtree(delete)
    for scheme, (path, want) in saved.items():
        loaded = SelectivePredictor.load(path)
        for a, b in zip(want, loaded.predict(x)):
            assert torch.equal(a, b), f"{which} x {scheme}: loaded predictor differs"
        assert loaded.spec["quant"]["name"] == scheme
        outcome[scheme] = "ok"
    return outcome


@pytest.mark.parametrize("which", FAST)
def test_export_load_predict_is_bit_identical(which, tmp_path, bert_dir, tmp_cache):
    outcome = _round_trip(which, tmp_path, bert_dir)
    text = which not in ("small_cnn", "checkpoint-state_dict")
    assert outcome["drop_layers"] == ("ok" if text else "not applicable")
    assert all(v == "ok" for k, v in outcome.items() if k != "drop_layers"), outcome


@pytest.mark.slow
@pytest.mark.parametrize("which", SLOW)
def test_export_load_predict_is_bit_identical_real_architectures(which, tmp_path, bert_dir, tmp_cache):
    outcome = _round_trip(which, tmp_path, bert_dir)
    assert all(v == "ok" for k, v in outcome.items() if k != "drop_layers"), outcome


def test_models_without_architecture_are_refused_up_front():
    for name in ("smollm2", "hf_causal_lm"):
        with pytest.raises(ValueError, match=rf"cannot save model={name} \(no architecture entry"):
            check_exportable({"model": {"name": name}, "quant": {"name": "none"}, "deploy": {"export": "x.pt"}})


@pytest.fixture
def saved(tmp_path):
    b, cfg = _arch("small_cnn", {"width": 8, "hidden": 16}, 10, (1, 14, 14))
    pred = SelectivePredictor(b, build_scorer({"name": "msp"}), build_selector({"name": "threshold", "value": 0.2}),
                              spec={"model": cfg, "input_shape": [1, 14, 14]})
    return pred, pred.save(tmp_path / "ok.pt")


@pytest.mark.parametrize("break_it, why", [
    (lambda o: o.update(config="{not json"), "JSONDecodeError"),
    (lambda o: o.update(config=json.dumps({k: v for k, v in json.loads(o["config"]).items() if k != "model"})),
     "KeyError: model"),
    (lambda o: o.update(config=json.dumps([1, 2])), "TypeError"),
    (lambda o: o.update(state_dict={"features.0.weight": torch.zeros(3)}), "RuntimeError"),
    (lambda o: o.update(state_dict=[1, 2]), "TypeError"),
    (lambda o: o.pop("state_dict"), "KeyError: state_dict"),
])
def test_malformed_payloads_are_one_line(saved, tmp_path, break_it, why):
    _, path = saved
    obj = torch.load(path, weights_only=True)
    break_it(obj)
    bad = tmp_path / "bad.pt"
    torch.save(obj, bad)
    with pytest.raises(ValueError) as e:  # changed after save: its digest no longer matches
        SelectivePredictor.load(bad)
    assert str(e.value).startswith(f"{bad} is corrupt: its content does not match the sha256 digest")
    obj["digest"] = payload_digest(obj)  # written malformed, with a matching digest: the payload checks still hold
    torch.save(obj, bad)
    with pytest.raises(ValueError) as e:
        SelectivePredictor.load(bad)
    msg = str(e.value)
    assert msg.startswith(f"{bad} is a malformed SelectivePredictor file ({why}") and "\n" not in msg


def test_inputs_are_cast_or_refused_in_one_line(saved):
    pred, path = saved
    x = images(6)
    ref = pred.predict(x)
    for other in (x.double(), x.half().float().half()):
        assert torch.equal(pred.predict(other)[0], pred.predict(other.float())[0])
    assert torch.equal(pred.predict((x * 255).round().to(torch.uint8))[0],
                       pred.predict((x * 255).round() / 255)[0])
    with pytest.raises(ValueError, match=r"takes inputs of shape \(N, 1, 14, 14\); got \(6, 3, 14, 14\)"):
        pred.predict(images(6, c=3))
    assert ref[0].shape == (6,)


def test_load_on_a_device_and_to(saved):
    pred, path = saved
    loaded = SelectivePredictor.load(path, device="cpu")
    assert loaded.device == "cpu" and loaded.to("cpu") is loaded
    with pytest.raises(ValueError, match="takes a device only"):
        loaded.to(torch.float16)


def test_cascade_defers_to_the_baseline_and_round_trips(tmp_path):
    """deploy.fallback=baseline: the compressed model answers where it accepts, the baseline (run only on the
    deferred inputs) elsewhere; the file holds both, loads with weights_only=True, and reloads bit-identically."""
    base, cfg = _arch("small_cnn", {"width": 8, "hidden": 16}, 10, (1, 14, 14))
    x = images(40)
    comp = compress(base, {"name": "int8", "calibration_samples": 16}, x, CTX)
    pred = SelectivePredictor(comp, build_scorer({"name": "msp"}), build_selector({"name": "coverage", "target": 0.6}),
                              spec={"model": cfg, "input_shape": [1, 14, 14]}, fallback=base)
    out = pred.outputs(x)
    pred.selector.fit(pred.scorer.score(out), torch.ones(40, dtype=torch.bool))
    rows = []
    hook = base.module.register_forward_pre_hook(lambda m, a: rows.append(len(a[0])))
    try:
        labels, conf, accepted, source = pred.predict(x, return_source=True)
    finally:
        hook.remove()
    assert 0 < int(accepted.sum()) < 40 and rows == [int((~accepted).sum())], "the baseline runs on deferred rows only"
    with torch.no_grad():
        want = torch.where(accepted, comp.module(x).argmax(-1), base.module(x).argmax(-1))
    assert torch.equal(labels, want) and (labels >= 0).all()
    assert torch.equal(source, torch.where(accepted, 0, 1))
    path = pred.save(tmp_path / "cascade.pt")
    raw = torch.load(path, weights_only=True)
    assert "fallback_state_dict" in raw and json.loads(raw["config"])["fallback"]["head"] == "classifier.4"
    loaded = SelectivePredictor.load(path)
    for a, b in zip(pred.predict(x, return_source=True), loaded.predict(x, return_source=True)):
        assert torch.equal(a, b)
    plain = SelectivePredictor(comp, pred.scorer, pred.selector, spec={"model": cfg, "input_shape": [1, 14, 14]})
    assert torch.equal(plain.predict(x, return_source=True)[3], torch.where(accepted, 0, -1))
    with pytest.raises(ValueError, match="use it with deploy.model=compressed"):
        check_exportable({"model": cfg, "quant": {"name": "int8"},
                          "deploy": {"export": "x.pt", "model": "baseline", "fallback": "baseline"}})
    with pytest.raises(ValueError, match=r"deploy.fallback='model' is not one of: null, baseline"):
        check_exportable({"model": cfg, "quant": {"name": "int8"}, "deploy": {"export": "x.pt", "fallback": "model"}})


@pytest.mark.slow
def test_cli_cascade_export_answers_as_the_runs_cascade(tmp_path, tmp_cache):
    from uqcompress.data import load_dataset
    from uqcompress.pipeline import run_config

    path = tmp_path / "cascade.pt"
    res = run_config({"data": {"name": "mnist"}, "limit": 300, "fit_limit": 300, "ood": {"name": "none"}, "threads": 1,
                      "model": {"name": "small_cnn", "epochs": 1, "width": 8, "hidden": 16}, "quant": {"name": "int8"},
                      "selector": {"name": "coverage", "target": 0.7}, "progress": False, "latency": {"repeats": 3},
                      "deploy": {"export": str(path), "fallback": "baseline"}})
    test = load_dataset({"name": "mnist"}, seed=0)["test"].head(300)
    labels, _, accepted, source = SelectivePredictor.load(path).predict(test.x, return_source=True)
    m = res.metrics
    assert float((labels == test.y).double().mean()) == pytest.approx(m["cascade.accuracy"])
    assert float((~accepted).double().mean()) == pytest.approx(m["cascade.deferral_rate"])
    assert 0 < m["cascade.deferral_rate"] < 1 and m["cascade.cost"] > 0
