"""Shared pieces of the text models: importing transformers, tokenizing batches, mean pooling, frozen embeddings,
and caching only the trained part of a large model.

Example:
    >>> import torch
    >>> from uqcompress.models.text import mean_pool
    >>> h = torch.tensor([[[1.0], [3.0], [100.0]]]); mask = torch.tensor([[1, 1, 0]])
    >>> mean_pool(h, mask)
    tensor([[2.]])
"""
from __future__ import annotations

import contextlib
import hashlib
import logging
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np
import torch
from torch import nn

from uqcompress.cache import hash_file
from uqcompress.models.train import fit_classifier
from uqcompress.progress import progress_bar

log = logging.getLogger(__name__)


def import_transformers():
    """``transformers``, imported after the torchvision shim (it imports torchvision); one-line error if missing."""
    from uqcompress._compat import ensure_torchvision

    try:
        ensure_torchvision()
    except Exception:  # text models do not need torchvision itself; transformers only probes for it
        pass
    try:
        import transformers
    except ImportError:
        raise ModuleNotFoundError("text models need 'transformers'; install it with: pip install 'uqcompress[text]'"
                                  ) from None
    transformers.logging.set_verbosity_error()  # no "weights not initialized" chatter: we report what we train
    transformers.utils.logging.disable_progress_bar()  # its "Loading weights" bar; ours cover the long steps
    return transformers


class TextPrepare:
    """Raw batch (list of str) -> ``{"input_ids", "attention_mask"}`` tensors for the module.

    Pads to the longest text of the batch (never beyond ``max_length``) and truncates at ``max_length`` tokens.

    Example:
        >>> prep = TextPrepare(tokenizer, max_length=8)        # doctest: +SKIP
        >>> prep(["a short one", "another"])["input_ids"].shape  # doctest: +SKIP
        torch.Size([2, 5])
    """

    def __init__(self, tokenizer: Any, max_length: int = 128, keys: Sequence[str] = ("input_ids", "attention_mask")):
        if int(max_length) < 2:
            raise ValueError(f"model.max_length={max_length} must be at least 2 (room for [CLS] and [SEP])")
        self.tokenizer = tokenizer
        self.max_length = int(max_length)
        self.keys = tuple(keys)

    def __call__(self, texts: Sequence[str]) -> dict[str, torch.Tensor]:
        if isinstance(texts, str):
            texts = [texts]
        enc = self.tokenizer(list(texts), padding="longest", truncation=True, max_length=self.max_length,
                             return_tensors="pt")
        return {k: enc[k] for k in self.keys if k in enc}

    def lengths(self, texts: Sequence[str]) -> np.ndarray:
        """Token count of each text after truncation (used to batch texts of similar length together)."""
        ids = self.tokenizer(list(texts), truncation=True, max_length=self.max_length)["input_ids"]
        return np.array([len(i) for i in ids])


def mean_pool(hidden: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Mean of token vectors ``hidden`` (B, T, D) over positions where ``mask`` (B, T) is 1 (padding ignored)."""
    m = mask.unsqueeze(-1).to(hidden.dtype)
    return (hidden * m).sum(1) / m.sum(1).clamp(min=1e-9)


def embed_texts(fn: Callable[..., torch.Tensor], prepare: TextPrepare, texts: Sequence[str], batch_size: int = 128,
                progress: bool = True, desc: str = "embed") -> torch.Tensor:
    """``fn(**prepare(batch))`` for every text, without grad, in batches of similar length (less padding).

    Returns a float32 (N, D) tensor in the order of ``texts``.
    """
    order = np.argsort(prepare.lengths(texts), kind="stable")
    out: torch.Tensor | None = None
    with torch.inference_mode(), progress_bar(total=len(texts), desc=desc, enabled=progress) as bar:
        for i in range(0, len(texts), batch_size):
            idx = order[i : i + batch_size]
            e = fn(**prepare([texts[j] for j in idx])).float()
            if out is None:
                out = torch.empty(len(texts), e.shape[1])
            out[torch.as_tensor(idx)] = e
            bar.update(len(idx))
    if out is None:
        raise ValueError("no texts to embed")
    return out


def head_inputs(module: nn.Module, head: str, prepare: TextPrepare, texts: Sequence[str], batch_size: int = 128,
                progress: bool = True, desc: str = "embed") -> torch.Tensor:
    """What the submodule ``head`` receives for each text (the penultimate features), module in eval mode.

    With a frozen body these are fixed, so a head is trained on them once instead of re-running the encoder.
    """
    from uqcompress.models.base import call_module

    captured: list[torch.Tensor] = []
    hook = module.get_submodule(head).register_forward_pre_hook(lambda mod, args: captured.append(args[0]))

    def run(**inputs: torch.Tensor) -> torch.Tensor:
        captured.clear()
        call_module(module, inputs)
        return captured[-1].reshape(captured[-1].shape[0], -1)

    was_training = module.training
    module.eval()
    try:
        return embed_texts(run, prepare, texts, batch_size, progress, desc)
    finally:
        hook.remove()
        module.train(was_training)


def files_fingerprint(folder: str | Path, patterns: Sequence[str] = ("*.safetensors", "*.bin", "*.json", "*.txt")
                      ) -> str:
    """sha256 over the weight / config / vocabulary files of a model folder (names and bytes)."""
    h = hashlib.sha256()
    for pattern in patterns:
        for p in sorted(Path(folder).glob(pattern)):
            h.update(p.name.encode())
            hash_file(h, p)
    return h.hexdigest()[:16]


def trainable_part(module: nn.Module, names: Sequence[str]) -> nn.ModuleDict:
    """A ModuleDict *sharing* the named submodules of ``module``, so that only they are trained and cached.

    Its ``state_dict`` holds only those weights: ``cached_weights(trainable_part(m, ["head"]), ...)`` stores a few KB,
    not the whole encoder.
    """
    return nn.ModuleDict({n.replace(".", "__"): module.get_submodule(n) for n in names})


def freeze_all_but(module: nn.Module, trainable: Sequence[nn.Module]) -> None:
    """``requires_grad=False`` everywhere except the parameters of ``trainable`` (gradients stop below them)."""
    for p in module.parameters():
        p.requires_grad_(False)
    for m in trainable:
        for p in m.parameters():
            p.requires_grad_(True)


@contextlib.contextmanager
def torch_threads(n: int):
    """Run a block with ``n`` torch CPU threads, restoring the setting afterwards."""
    before = torch.get_num_threads()
    torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def fit_head(head: nn.Module, features: torch.Tensor, labels: torch.Tensor, **opts: Any) -> nn.Module:
    """:func:`fit_classifier` of a small head on precomputed features, on one thread: a tiny Linear gains nothing
    from more, and loses a lot on a shared machine whose cores are oversubscribed (OpenMP barriers spin)."""
    with torch_threads(1):
        return fit_classifier(head, features, labels, **opts)
