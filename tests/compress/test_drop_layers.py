"""``quant=drop_layers``: the last n blocks of LLaMA-style and BERT-style models go, the baseline stays intact."""
from __future__ import annotations

import pytest
import torch

from uqcompress._compat import ensure_torchvision

ensure_torchvision()  # transformers imports torchvision

from transformers import BertConfig, BertModel, LlamaConfig, LlamaForCausalLM  # noqa: E402

from uqcompress.compress import SCHEMES, compress  # noqa: E402
from uqcompress.models.base import ModelBundle  # noqa: E402
from uqcompress.models.causal_lm import MultipleChoiceLM, MultipleChoicePrompter, toy_tokenizer  # noqa: E402


def tiny_llama(layers: int = 3, vocab: int = 40) -> LlamaForCausalLM:
    torch.manual_seed(0)
    return LlamaForCausalLM(LlamaConfig(hidden_size=32, intermediate_size=64, num_hidden_layers=layers,
                                        num_attention_heads=2, num_key_value_heads=2, vocab_size=vocab)).eval()


def test_drops_last_llama_layers_inside_the_mc_wrapper():
    tok = toy_tokenizer("Q: A: a b c d e".split())
    lm = tiny_llama(vocab=tok.vocab_size)
    prepare = MultipleChoicePrompter(tok, num_options=3)
    base = ModelBundle(MultipleChoiceLM(lm), "tiny", "fp", "multiple_choice", 3, prepare=prepare)
    kept = [lm.model.layers[i] for i in range(2)]
    small = compress(base, {"name": "drop_layers", "n": 1}, None)
    inner = small.module.lm
    assert len(inner.model.layers) == 2 and inner.config.num_hidden_layers == 2
    assert len(lm.model.layers) == 3 and lm.config.num_hidden_layers == 3  # baseline untouched
    for a, b in zip(kept, inner.model.layers):  # the first layers are kept as they were
        assert torch.equal(a.mlp.up_proj.weight, b.mlp.up_proj.weight)
    assert small.info["layers_dropped"] == 1 and small.info["scheme"] == "drop_layers"
    assert small.fingerprint != base.fingerprint
    assert compress(base, {"name": "drop_layers", "n": 2}, None).fingerprint != small.fingerprint
    items = [{"question": "a b", "options": ["c", "d e", "a"]}, {"question": "e", "options": ["b", "c"]}]
    before, after = base.logits(items), small.logits(items)
    assert after.shape == (2, 3) and torch.isfinite(after).all() and not torch.allclose(before, after)
    # the truncated model equals a fresh 2-layer model with the same weights
    ref = LlamaForCausalLM(LlamaConfig(**{**lm.config.to_dict(), "num_hidden_layers": 2})).eval()
    ref.load_state_dict(inner.state_dict())
    with torch.inference_mode():
        assert torch.allclose(MultipleChoiceLM(ref)(**prepare(items)), after, atol=1e-5)


def test_drops_bert_encoder_layers():
    torch.manual_seed(0)
    bert = BertModel(BertConfig(hidden_size=32, intermediate_size=64, num_hidden_layers=4, num_attention_heads=2,
                                vocab_size=50)).eval()
    base = ModelBundle(bert, "tiny_bert", "fp", "text", 2)
    small = compress(base, {"name": "drop_layers", "n": 3}, None)
    assert len(small.module.encoder.layer) == 1 and small.module.config.num_hidden_layers == 1
    assert len(bert.encoder.layer) == 4
    ids = torch.randint(0, 50, (2, 7))
    with torch.inference_mode():
        assert small.module(input_ids=ids).last_hidden_state.shape == (2, 7, 32)


def test_bad_n_and_unsupported_models_fail_in_one_line():
    base = ModelBundle(tiny_llama(layers=2), "tiny", "fp", "multiple_choice", 3)
    with pytest.raises(ValueError, match=r"quant.n=2 must be less than the 2 layers of 'tiny' \(model.layers\)"):
        compress(base, {"name": "drop_layers", "n": 2}, None)
    for bad in (0, -1, 1.5, "2", True):
        with pytest.raises(ValueError, match="must be a positive integer"):
            compress(base, {"name": "drop_layers", "n": bad}, None)
    mlp = ModelBundle(torch.nn.Sequential(torch.nn.Linear(4, 4)), "mlp", "fp", "image", 4)
    with pytest.raises(ValueError) as e:
        compress(mlp, {"name": "drop_layers", "n": 1}, None)
    assert "model.layers" in str(e.value) and "Sequential" in str(e.value) and "\n" not in str(e.value)


def test_registered_with_a_config():
    from pathlib import Path

    import uqcompress.compress.drop_layers as mod

    assert "drop_layers" in SCHEMES
    assert "n: 2" in (Path(mod.__file__).parents[1] / "conf" / "quant" / "drop_layers.yaml").read_text()
