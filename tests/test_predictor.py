"""SelectivePredictor: bit-identical save -> load (float and int8, every scorer kind), refusal of foreign files,
loading without training data or cache, and deploy.export from a pipeline run (Python and CLI)."""
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from uqcompress.compress import compress
from uqcompress.models import MODELS
from uqcompress.predictor import SelectivePredictor
from uqcompress.selection import build_selector
from uqcompress.uncertainty import build_scorer
from uqcompress.uncertainty.base import Outputs

ROOT = Path(__file__).resolve().parents[1]
SPEC = {"model": {"name": "small_cnn", "width": 8, "hidden": 16}, "input_shape": [1, 14, 14]}
X = torch.rand(24, 1, 14, 14, generator=torch.Generator().manual_seed(0))
Y = torch.arange(24) % 10


@pytest.fixture(scope="module")
def models():
    torch.manual_seed(0)
    base = MODELS.get("small_cnn").rebuild_architecture(SPEC["model"], 10, (1, 14, 14))
    out = {"none": base, "int8": compress(base, {"name": "int8"}, torch.rand(32, 1, 14, 14))}
    for name in REBUILT_BY_SCHEME:
        out[name] = compress(base, {"name": name}, None)
    return out


def fitted(bundle, quant, scorer_cfg, selector_cfg):
    pred = SelectivePredictor(bundle, build_scorer(scorer_cfg), build_selector(selector_cfg),
                              spec={**SPEC, "quant": {"name": quant}})
    out = pred.outputs(X)
    out.labels = Y
    fit = Outputs(out.logits, Y, features=out.features)
    pred.scorer.fit(out, fit)
    conf = pred.scorer.score(out)
    pred.selector.fit(conf, pred.scorer.probs(out).argmax(-1) == Y, out)
    return pred


REBUILT_BY_SCHEME = ("fp16", "bf16", "int8_dynamic", "prune_global_l1", "prune_2of4")
CASES = [
    ("none", {"name": "msp", "temperature": True}, {"name": "coverage", "target": 0.7}),
    ("int8", {"name": "msp", "temperature": True}, {"name": "coverage", "target": 0.7}),
    ("int8", {"name": "energy"}, {"name": "risk", "target": 0.5}),
    ("int8", {"name": "knn", "k": 3}, {"name": "threshold", "value": 0.5}),
    ("int8", {"name": "mahalanobis"}, {"name": "coverage"}),
    ("int8", {"name": "mc_dropout", "samples": 4, "mode": "head", "seed": 3}, {"name": "mc_interval"}),
    ("none", {"name": "mc_dropout", "samples": 3, "mode": "full", "score": "entropy"}, {"name": "coverage"}),
    ("fp16", {"name": "msp", "temperature": True}, {"name": "coverage", "target": 0.7}),
    ("bf16", {"name": "entropy"}, {"name": "coverage"}),
    ("int8_dynamic", {"name": "margin"}, {"name": "risk", "target": 0.5}),
    ("prune_global_l1", {"name": "msp"}, {"name": "coverage"}),
    ("prune_2of4", {"name": "energy"}, {"name": "coverage"}),
]


@pytest.mark.parametrize("quant,scorer,selector", CASES, ids=[f"{q}-{s['name']}-{t['name']}" for q, s, t in CASES])
def test_save_load_is_bit_identical(models, tmp_path, quant, scorer, selector):
    pred = fitted(models[quant], quant, scorer, selector)
    path = pred.save(tmp_path / "pred.pt")
    loaded = SelectivePredictor.load(path)
    a, b = pred.predict(X), loaded.predict(X)
    for u, v in zip(a, b):
        assert torch.equal(u, v)
    labels, conf, accepted = a
    assert labels.dtype == torch.long and conf.dtype == torch.float64 and accepted.dtype == torch.bool
    assert torch.equal(labels == -1, ~accepted)
    assert type(loaded.model).__name__ == type(pred.model).__name__
    assert loaded.scorer.temperature == pred.scorer.temperature
    assert loaded.selector.threshold == pred.selector.threshold or (
        loaded.selector.threshold != loaded.selector.threshold)  # NaN for rule-based mc_interval


def test_loaded_int8_predictor_needs_no_training_data_and_no_cache(models, tmp_path, tmp_cache, monkeypatch):
    pred = fitted(models["int8"], "int8", {"name": "knn", "k": 3}, {"name": "coverage"})
    path = pred.save(tmp_path / "pred.pt")
    from uqcompress.data import DATASETS
    from uqcompress.models import ModelEntry

    def refuse(*a, **k):
        raise AssertionError("loading a predictor must not touch data sets or trained-model builders")

    monkeypatch.setattr(DATASETS, "get", refuse)
    monkeypatch.setattr(ModelEntry, "__call__", refuse)  # builders: only the architecture may be used
    loaded = SelectivePredictor.load(path)
    assert any(type(m).__module__.startswith("torch.ao.nn.quantized") for m in loaded.model.modules())
    assert torch.equal(loaded.predict(X)[1], pred.predict(X)[1])
    assert not tmp_cache.exists() or not any(tmp_cache.rglob("*.pt"))


def test_refuses_files_it_did_not_write(tmp_path):
    plain = tmp_path / "plain.pt"
    torch.save({"weights": torch.zeros(3)}, plain)
    with pytest.raises(ValueError, match="is not a SelectivePredictor file \\(no 'uqcompress.SelectivePredictor'"):
        SelectivePredictor.load(plain)
    pickled = tmp_path / "module.pt"
    torch.save(torch.nn.Linear(2, 2), pickled)  # a pickled module: weights_only refuses it
    with pytest.raises(ValueError, match="is not a SelectivePredictor file \\(it does not load as plain tensors"):
        SelectivePredictor.load(pickled)
    text = tmp_path / "notes.txt"
    text.write_text("hello")
    with pytest.raises(ValueError, match="not a SelectivePredictor file"):
        SelectivePredictor.load(text)
    with pytest.raises(FileNotFoundError):
        SelectivePredictor.load(tmp_path / "missing.pt")


def test_save_needs_a_rebuildable_model(models, tmp_path):
    pred = SelectivePredictor(models["none"], build_scorer({"name": "msp"}), build_selector({"name": "coverage"}))
    with pytest.raises(ValueError, match="needs spec\\['model'\\]\\['name'\\]"):
        pred.save(tmp_path / "p.pt")


RUN = {"seed": 0, "limit": 100, "fit_limit": 100, "progress": False,
       "data": {"name": "mnist", "splits": {"fit": 0.6, "calibration": 0.2, "test": 0.2}},
       "model": {"name": "small_cnn", "epochs": 1, "width": 8, "hidden": 32},
       "quant": {"name": "int8", "calibration_samples": 64}, "ood": {"name": "none"},
       "uncertainty": {"name": "entropy", "temperature": True}, "selector": {"name": "coverage", "target": 0.8},
       "latency": {"batch_size": 8, "repeats": 1, "warmup": 0}}


def test_deploy_export_reproduces_the_runs_compressed_scores(tmp_path, tmp_cache):
    from uqcompress.pipeline import load_data, run_config

    path = tmp_path / "deploy" / "pred.pt"
    res = run_config({**RUN, "deploy": {"export": str(path)}})
    assert res.metrics["deploy.path"] == str(path)
    data, _ = load_data({**RUN})
    labels, conf, accepted = SelectivePredictor.load(path).predict(data["test"].x)
    assert torch.equal(conf, res.compressed.confidence["test"])
    assert torch.equal(accepted, res.compressed.accept["test"])
    cfg = json.loads(torch.load(path, weights_only=True)["config"])
    assert cfg["quant"]["name"] == "int8" and cfg["scorer"]["name"] == "entropy" and cfg["scorer"]["temperature"] > 0


@pytest.mark.slow
def test_cli_deploy_export(tmp_path, tmp_cache):
    out = tmp_path / "p.pt"
    cmd = [sys.executable, "-m", "uqcompress", "limit=100", "fit_limit=100", "ood.limit=100", "progress=false",
           "model.epochs=1", "model.width=8", "uncertainty=mc_dropout", "uncertainty.samples=4",
           "uncertainty.mode=head", "selector=mc_interval", f"deploy.export={out}", f"hydra.run.dir={tmp_path / 'run'}"]
    env = {**os.environ, "PYTHONPATH": str(ROOT), "UQCOMPRESS_CACHE": str(tmp_cache)}
    r = subprocess.run(cmd, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stderr[-2000:]
    results = json.loads((tmp_path / "run" / "results.json").read_text())
    assert results["deploy.path"] == str(out) and results["compressed.ood_auroc"] is not None
    labels, conf, accepted = SelectivePredictor.load(out).predict(torch.rand(5, 1, 28, 28))
    assert labels.shape == (5,)


def test_export_that_load_could_not_rebuild_is_refused_before_any_work(tmp_path, monkeypatch):
    from uqcompress import pipeline
    from uqcompress.predictor import check_exportable

    monkeypatch.setattr(pipeline, "load_data", lambda *a: pytest.fail("refused too late: data were loaded"))
    with pytest.raises(ValueError, match=r"cannot save model=smollm2 .*deployable models: .*small_cnn"):
        pipeline.run_config({"model": {"name": "smollm2"}, "quant": {"name": "int8_dynamic"},
                             "data": {"name": "bigbench_mc"}, "ood": {"name": "none"},
                             "deploy": {"export": str(tmp_path / "p.pt")}})
    with pytest.raises(ValueError, match=r"deploy.model='nope' is not one of"):
        check_exportable({"model": {"name": "small_cnn"}, "quant": {"name": "int8"},
                          "deploy": {"export": "p.pt", "model": "nope"}})
    for quant in ("int8", "int8_weight_only", "brevitas_w4a8", "drop_layers"):  # every registered scheme rebuilds
        check_exportable({"model": {"name": "small_cnn"}, "quant": {"name": quant}, "deploy": {"export": "p.pt"}})
    assert not (tmp_path / "p.pt").exists()
