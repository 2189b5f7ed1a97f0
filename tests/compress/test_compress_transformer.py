"""Schemes on a tiny Hugging Face BERT classifier (Linear layers only, dict inputs, no FX tracing)."""
from __future__ import annotations

import pytest
import torch
from torch import nn

from uqcompress.compress import CompressContext, compress
from uqcompress.compress._targets import block_kind
from uqcompress.measure import dense_weight, state_dict_bytes

CTX = CompressContext(progress=False, batch_size=8)

ATTENTION = {f"bert.encoder.layer.{i}.{s}" for i in range(2)
             for s in ("attention.self.query", "attention.self.key", "attention.self.value", "attention.output.dense")}
FFN = {f"bert.encoder.layer.{i}.{s}" for i in range(2) for s in ("intermediate.dense", "output.dense")}


def _linears(module: nn.Module) -> dict[str, torch.Tensor]:
    return {n: m.weight.detach().clone() for n, m in module.named_modules() if isinstance(m, nn.Linear)}


def _changed(before: dict[str, torch.Tensor], module: nn.Module) -> set[str]:
    return {n for n, w in before.items() if not torch.equal(dense_weight(module.get_submodule(n)), w)}


@pytest.mark.parametrize("name,cfg", [
    ("int8_dynamic", {}), ("fp16", {}), ("bf16", {}), ("int8_weight_only", {}),
    ("int4_weight_only", {"group_size": 16}), ("brevitas_w4a8", {"act_bits": None}), ("brevitas_w8a8", {}),
])
def test_quant_schemes_run_on_tiny_bert(name, cfg, bert_bundle, texts):
    ref = bert_bundle.logits(texts[:6])
    out = compress(bert_bundle, {"name": name, **cfg}, texts, CTX)
    got = out.logits(texts[:6])
    assert got.shape == (6, 3) and got.dtype == torch.float32 and torch.isfinite(got).all()
    assert not torch.equal(got, ref)
    assert (got - ref).abs().max() < 0.5  # still the same model, approximately
    if name in ("fp16", "bf16"):
        assert next(out.module.parameters()).dtype == {"fp16": torch.float16, "bf16": torch.bfloat16}[name]
    elif name == "int8_dynamic":
        assert out.module.bert.encoder.layer[0].attention.self.query._get_name() == "DynamicQuantizedLinear"
    else:
        changed = _changed(_linears(bert_bundle.module), out.module)
        assert ATTENTION | FFN <= changed  # every transformer Linear was quantized
    if name in ("int8_dynamic", "int8_weight_only"):
        assert state_dict_bytes(out.module) < state_dict_bytes(bert_bundle.module)


def test_brevitas_weight_only_replaces_linear_layers_without_tracing(bert_bundle, texts):
    out = compress(bert_bundle, {"name": "brevitas_w4a8", "weight_bits": 3, "act_bits": None}, None, CTX)
    q = out.module.bert.encoder.layer[1].intermediate.dense
    assert type(q).__name__ == "QuantLinear"
    assert max(int(r.unique().numel()) for r in q.quant_weight().value.detach()) <= 8
    assert out.info["bits"] == 3 and out.info["act_bits"] is None


@pytest.mark.parametrize("target,expected", [("attention", ATTENTION), ("ffn", FFN)])
def test_prune_targets_hit_only_intended_layers(target, expected, bert_bundle):
    before = _linears(bert_bundle.module)
    out = compress(bert_bundle, {"name": "prune_global_l1", "amount": 0.5, "target": target}, None, CTX)
    assert _changed(before, out.module) == expected  # never the pooler, never the classifier head
    assert abs(out.info["sparsity"] - 0.5) <= 0.01 and out.info["sparsity_target"] == target
    nm = compress(bert_bundle, {"name": "prune_2of4", "target": target}, None, CTX)
    assert _changed(before, nm.module) == expected


def test_target_all_excludes_head_unless_asked(bert_bundle):
    before = _linears(bert_bundle.module)
    out = compress(bert_bundle, {"name": "prune_global_l1", "amount": 0.3}, None, CTX)
    assert _changed(before, out.module) == ATTENTION | FFN | {"bert.pooler.dense"}
    out = compress(bert_bundle, {"name": "prune_global_l1", "amount": 0.3, "include_head": True}, None, CTX)
    assert "classifier" in _changed(before, out.module)


def test_int8_dynamic_target_ffn_only(bert_bundle):
    out = compress(bert_bundle, {"name": "int8_dynamic", "target": "ffn"}, None, CTX)
    kinds = {n: m._get_name() for n, m in out.module.named_modules()}
    assert all(kinds[n] == "DynamicQuantizedLinear" for n in FFN)
    assert all(kinds[n] == "Linear" for n in ATTENTION)


def test_int8_static_fx_mode_refuses_transformer_with_one_line_hint(bert_bundle, texts):
    with pytest.raises(ValueError) as e:
        compress(bert_bundle, {"name": "int8", "mode": "fx"}, texts, CTX)
    msg = str(e.value)
    assert "\n" not in msg and "tiny_bert" in msg and "quant=int8" in msg and "quant.mode=per_layer" in msg


def test_int8_static_fallback_is_explicit_and_reported(bert_bundle, texts):
    out = compress(bert_bundle, {"name": "int8", "mode": "fx", "fallback": "int8_dynamic"}, texts, CTX)
    assert out.info["scheme"] == "int8_dynamic" and "fell back to quant=int8_dynamic" in out.info["note"]
    assert out.logits(texts[:2]).shape == (2, 3)


def test_int8_static_auto_quantizes_every_linear_of_a_transformer_per_layer(bert_bundle, texts, tmp_cache):
    """FX cannot trace HF BERT: auto mode quantizes each Linear statically (calibrated scales), says so, caches it."""
    ref = bert_bundle.logits(texts[:6])
    out = compress(bert_bundle, {"name": "int8"}, texts, CTX)
    assert out.info["scheme"] == "int8" and out.info["backend"] == "torch.ao-eager-per-layer-x86"
    assert "FX cannot trace" in out.info["note"] and "per layer" in out.info["note"]
    linears = [n for n, m in bert_bundle.module.named_modules() if isinstance(m, nn.Linear)]
    for name in linears:
        wrapped = out.module.get_submodule(name)
        assert type(wrapped.module).__name__ == "Linear" and wrapped.module.weight().dtype == torch.qint8
        assert type(wrapped.quant).__name__ == "Quantize" and float(wrapped.quant.scale) > 0  # calibrated input scale
    got = out.logits(texts[:6])
    assert got.shape == ref.shape and torch.isfinite(got).all() and not torch.equal(got, ref)
    assert (got - ref).abs().max() < 0.5
    assert state_dict_bytes(out.module) < state_dict_bytes(bert_bundle.module)  # tiny BERT: mostly embeddings
    steps = [{"name": "prune_global_l1", "amount": 0.5}, {"name": "int8"}]
    pruned = compress(bert_bundle, {"name": "chain", "steps": steps}, texts, CTX)  # prune, then int8 per layer
    assert pruned.info["sparsity"] == pytest.approx(0.5, abs=0.01)  # measured through the quant wrappers
    again = compress(bert_bundle, {"name": "int8"}, texts, CTX)  # warm: calibrated state from the cache
    assert again.info["compressed_from_cache"] and torch.equal(again.logits(texts[:6]), got)


@pytest.mark.parametrize("mode", ["per_layer", "fx"])
def test_int8_skip_keeps_matching_layers_fp32(bert_bundle, texts, tmp_cache, mode):
    from uqcompress.models.base import ModelBundle
    from uqcompress.models.small_cnn import SmallCNN

    if mode == "per_layer":
        bundle, x, pattern = bert_bundle, texts, "bert.encoder.layer.?.output.dense"
        kept = {"bert.encoder.layer.0.output.dense", "bert.encoder.layer.1.output.dense"}
    else:
        torch.manual_seed(0)
        bundle = ModelBundle(SmallCNN(width=8, hidden=16).eval(), "small_cnn", "cnn", "image", 10)
        x, pattern, kept = torch.rand(32, 1, 28, 28), "classifier.4", {"classifier.4"}
    out = compress(bundle, {"name": "int8", "mode": mode, "skip": [pattern], "calibration_samples": 32}, x, CTX)
    assert set(out.info["fp32_layers"]) == kept
    for name in kept:
        layer = out.module.get_submodule(name)
        assert type(layer) is nn.Linear and layer.weight.dtype == torch.float32  # untouched fp32
    attention_out = "bert.encoder.layer.0.attention.output.dense" if mode == "per_layer" else None
    if attention_out:  # ?-pattern: the attention output layer (same suffix) is still int8
        assert type(out.module.get_submodule(attention_out).module).__name__ == "Linear"
        assert out.module.get_submodule(attention_out).module.weight().dtype == torch.qint8
    with pytest.raises(ValueError, match=r"quant.skip pattern\(s\) \['nope\*'\] match no Conv/Linear layer"):
        compress(bundle, {"name": "int8", "mode": mode, "skip": ["nope*"]}, x, CTX)


def test_int8_static_per_layer_mode_on_a_cnn_matches_its_scales(tmp_cache):
    from uqcompress.models.base import ModelBundle
    from uqcompress.models.small_cnn import SmallCNN

    torch.manual_seed(0)
    bundle = ModelBundle(SmallCNN(width=8, hidden=16).eval(), "small_cnn", "cnn", "image", 10)
    x = torch.rand(64, 1, 28, 28)
    out = compress(bundle, {"name": "int8", "mode": "per_layer", "calibration_samples": 64}, x, CTX)
    assert out.info["backend"] == "torch.ao-eager-per-layer-x86" and "note" not in out.info
    convs = [m for m in out.module.modules() if type(m).__name__ == "Conv2d" and hasattr(m, "scale")]
    assert len(convs) == 4  # the 4 convs are quantized modules with an output scale
    assert (out.logits(x[:8]).argmax(-1) == bundle.logits(x[:8]).argmax(-1)).float().mean() >= 0.75


@pytest.mark.parametrize("name", ["bert.encoder.layer.0.attention.self.query", "model.layers.2.self_attn.o_proj",
                                  "blocks.3.attn.qkv", "transformer.layer.1.attention.q_lin"])
def test_block_kind_attention(name):
    assert block_kind(name) == "attention"


@pytest.mark.parametrize("name", ["bert.encoder.layer.0.output.dense", "bert.encoder.layer.0.intermediate.dense",
                                  "model.layers.2.mlp.gate_proj", "blocks.3.mlp.fc2", "transformer.layer.1.ffn.lin1"])
def test_block_kind_ffn(name):
    assert block_kind(name) == "ffn"


@pytest.mark.parametrize("name", ["bert.pooler.dense", "classifier", "features.0", "lm_head"])
def test_block_kind_neither(name):
    assert block_kind(name) is None
