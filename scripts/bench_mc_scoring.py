"""Benchmark multiple-choice option scoring: the shared-prompt scorer vs. one full sequence per option.

Uses the SmolLM2-135M architecture with random weights (no conversion needed; speed does not depend on the values)
on synthetic questions shaped like BIG-bench items, and prints tokens/s and the speed-up ratio.

    PYTHONPATH=. python scripts/bench_mc_scoring.py --questions 32 --options 5 --prompt 40 --option-len 4 --threads 2
"""
from __future__ import annotations

import argparse
import time

import torch

from uqcompress._compat import ensure_torchvision

ensure_torchvision()

from transformers import LlamaConfig, LlamaForCausalLM  # noqa: E402

from uqcompress.models.causal_lm import MultipleChoiceLM  # noqa: E402

SMOLLM2 = dict(hidden_size=576, intermediate_size=1536, num_hidden_layers=30, num_attention_heads=9,
               num_key_value_heads=3, head_dim=64, vocab_size=49152, tie_word_embeddings=True)


def naive(lm, prompt_ids, option_ids, option_mask) -> torch.Tensor:
    """Reference cost: every (question, option) as its own right-padded row prompt+option, full logits."""
    b, k, o = option_ids.shape
    rows = torch.cat([prompt_ids.repeat_interleave(k, 0), option_ids.reshape(b * k, o)], 1)
    mask = torch.cat([torch.ones_like(prompt_ids).repeat_interleave(k, 0), option_mask.reshape(b * k, o)], 1)
    logp = lm(input_ids=rows, attention_mask=mask).logits[:, prompt_ids.shape[1] - 1:-1].float().log_softmax(-1)
    tok = logp.gather(2, option_ids.reshape(b * k, o, 1)).squeeze(2) * option_mask.reshape(b * k, o)
    return tok.sum(-1).view(b, k)


def timed(fn, repeats: int) -> float:
    fn()
    best = float("inf")
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t0)
    return best


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--questions", type=int, default=16)
    ap.add_argument("--options", type=int, default=5)
    ap.add_argument("--prompt", type=int, default=40, help="prompt tokens")
    ap.add_argument("--option-len", type=int, default=4, help="tokens per option")
    ap.add_argument("--layers", type=int, default=30)
    ap.add_argument("--threads", type=int, default=0, help="torch threads (0 = torch default)")
    ap.add_argument("--repeats", type=int, default=3)
    a = ap.parse_args()
    if a.threads:
        torch.set_num_threads(a.threads)
    torch.manual_seed(0)
    lm = LlamaForCausalLM(LlamaConfig(**{**SMOLLM2, "num_hidden_layers": a.layers})).eval()
    b, k, o, p = a.questions, a.options, a.option_len, a.prompt
    prompt_ids = torch.randint(3, 49000, (b, p))
    option_ids = torch.randint(3, 49000, (b, k, o))
    option_mask = torch.ones(b, k, o, dtype=torch.long)
    module = MultipleChoiceLM(lm)
    with torch.inference_mode():
        ours = module(prompt_ids, torch.ones_like(prompt_ids), option_ids, option_mask)
        ref = naive(lm, prompt_ids, option_ids, option_mask)
        err = float((ours - ref).abs().max())
        t_ours = timed(lambda: module(prompt_ids, torch.ones_like(prompt_ids), option_ids, option_mask), a.repeats)
        t_ref = timed(lambda: naive(lm, prompt_ids, option_ids, option_mask), a.repeats)
    real = b * (p + k * o)
    print(f"{b} questions x {k} options, prompt {p} + option {o} tokens, {a.layers} layers, "
          f"{torch.get_num_threads()} threads; max |ours - naive| = {err:.2e}")
    print(f"shared prompt : {t_ours:7.2f} s  {real / t_ours:7.0f} real tokens/s  {1000 * t_ours / b:7.1f} ms/question")
    print(f"one row/option: {t_ref:7.2f} s  {real / t_ref:7.0f} real tokens/s  {1000 * t_ref / b:7.1f} ms/question")
    print(f"speed-up      : {t_ref / t_ours:.2f}x")


if __name__ == "__main__":
    main()
