"""CPU int4 (torchao's IntxUnpackedToInt8Tensor): a pass over a split dequantizes each weight once, with logits
bit-identical to torchao's per-matmul path; the weights are quantized again after the pass, also after an error; the
latency figure and a deployed predictor keep torchao's own path."""
from __future__ import annotations

import pytest
import torch

from uqcompress._compat import ensure_torchvision

ensure_torchvision()  # transformers imports torchvision

from transformers import LlamaConfig, LlamaForCausalLM  # noqa: E402

from uqcompress.compress import compress  # noqa: E402
from uqcompress.data.base import DataBundle, Split  # noqa: E402
from uqcompress.models.causal_lm import mc_bundle, toy_tokenizer  # noqa: E402
from uqcompress.runner import Runner  # noqa: E402

WORDS = "what do cats dogs cows say eat meow bark moo grass fish bones very loud ? the".split()


@pytest.fixture
def int4_lm():
    """A tiny random LLaMA scoring 24 multiple-choice questions (chunks of 4 inside), int4 weight-only on CPU."""
    tok = toy_tokenizer(["Q:", "A:", *WORDS])
    torch.manual_seed(0)
    lm = LlamaForCausalLM(LlamaConfig(hidden_size=64, intermediate_size=128, num_hidden_layers=2,
                                      num_attention_heads=2, num_key_value_heads=2, vocab_size=tok.vocab_size,
                                      tie_word_embeddings=False)).eval()
    g = torch.Generator().manual_seed(0)
    items = [{"question": " ".join(WORDS[int(j)] for j in torch.randint(0, 8, (1 + i % 5,), generator=g)),
              "options": [WORDS[int(j)] for j in torch.randperm(len(WORDS), generator=g)[:4]]} for i in range(24)]
    y = torch.zeros(24, dtype=torch.long)
    data = DataBundle("toy_mc", "multiple_choice", 4, {"calibration": Split(items[:8], y[:8]),
                                                       "test": Split(items, y)})
    base = mc_bundle("tiny", lm, tok, "tiny-int4-pass", {"chunk_size": 4}, data)
    return compress(base, {"name": "int4_weight_only", "group_size": 32}, None), items


def _count_dequantize(monkeypatch) -> list[int]:
    from torchao.quantization.quantize_.workflows.intx.intx_unpacked_to_int8_tensor import IntxUnpackedToInt8Tensor

    calls = [0]
    real = IntxUnpackedToInt8Tensor.dequantize

    def counted(self):
        calls[0] += 1
        return real(self)

    monkeypatch.setattr(IntxUnpackedToInt8Tensor, "dequantize", counted)
    return calls


def _quantized(module) -> list[str]:
    return [n for n, m in module.named_modules() if isinstance(m, torch.nn.Linear)
            and type(m.weight).__name__ == "IntxUnpackedToInt8Tensor"]


def test_a_pass_dequantizes_each_weight_once_with_bit_identical_logits(int4_lm, monkeypatch):
    q, items = int4_lm
    assert q.info["dequantize_per_pass"] is True and q.info["simulated"] is True
    layers = _quantized(q.module)
    assert len(layers) == 2 * 7 + 1  # q, k, v, o, gate, up, down per layer + the output layer
    calls = _count_dequantize(monkeypatch)
    slow = Runner("cpu", batch_size=8, progress=False, dequantize_per_pass=False).logits(q, items, split="test")
    per_matmul = calls[0]
    calls[0] = 0
    fast = Runner("cpu", batch_size=8, progress=False).logits(q, items, split="test")
    assert torch.equal(fast, slow)  # the same dequantize() and F.linear: not "close", equal
    assert calls[0] == len(layers)  # once per weight for the whole pass (3 batches x 2 chunks x 2 decoder calls)
    assert per_matmul >= 10 * len(layers)
    assert _quantized(q.module) == layers  # quantized again after the pass


def test_weights_are_put_back_when_a_pass_fails(int4_lm):
    q, items = int4_lm
    layers = _quantized(q.module)
    runner = Runner("cpu", batch_size=8, progress=False)

    def failing(inp, n):
        assert not _quantized(q.module)  # inside the pass: plain float weights
        raise RuntimeError("killed mid-pass")

    with pytest.raises(RuntimeError, match="killed mid-pass"):
        runner._map(q, items, failing, split="test", what="logits")
    assert _quantized(q.module) == layers


def test_latency_and_a_deployed_predictor_keep_torchaos_path(int4_lm, monkeypatch):
    """The latency figure times the scheme's own matmuls (it is what int4 costs as torchao runs it); a predictor
    keeps its weights quantized between and during calls."""
    from uqcompress.predictor import SelectivePredictor
    from uqcompress.selection import build_selector
    from uqcompress.uncertainty import build_scorer

    q, items = int4_lm
    n = len(_quantized(q.module))
    calls = _count_dequantize(monkeypatch)
    Runner("cpu", progress=False).latency({"compressed": q}, items, batch_size=4, repeats=1, warmup=0)
    assert calls[0] > n  # per matmul, as torchao runs it
    pred = SelectivePredictor(q, build_scorer({"name": "msp"}), build_selector({"name": "threshold", "value": 0.0}))
    assert pred.runner.dequantize_per_pass is False
    calls[0] = 0
    labels, conf, accepted = pred.predict(items[:8])
    assert calls[0] > n and labels.shape == (8,)
