"""Shared pieces of the text models: importing transformers, tokenizing batches, mean pooling, and caching only the
trained part of a large model (frozen fit-split embeddings come from ``Runner.features``).

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
from typing import Any, Sequence

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
    from uqcompress._quiet import known_chatter

    try:
        with known_chatter():
            import transformers
            # its model machinery imports torchao (when installed) on first use: import it here, where the known
            # import-time messages of torchao are filtered (uqcompress._quiet), not in the middle of a run
            import transformers.modeling_utils  # noqa: F401
    except ImportError:
        raise ModuleNotFoundError("text models need 'transformers'; install it with (in the uqcompress clone) "
                                  ".venv/bin/pip install -e '.[text]'"
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


#: files of a Hugging Face model folder that hold weights (a saved predictor stores its own state_dict instead)
WEIGHT_FILES = (".safetensors", ".bin", ".pt", ".pth", ".h5", ".msgpack", ".ckpt", ".gguf", ".onnx", ".ot")


def hf_files(config: Any, tokenizer: Any) -> dict[str, bytes]:
    """The small files that rebuild a Hugging Face model's structure and tokenizer without its weights:
    ``config.json`` and the tokenizer's files, as ``{name: bytes}`` (what a SelectivePredictor file stores)."""
    import tempfile

    with tempfile.TemporaryDirectory() as tmp:
        config.to_json_file(str(Path(tmp) / "config.json"))
        tokenizer.save_pretrained(tmp)
        return {p.name: p.read_bytes() for p in sorted(Path(tmp).iterdir())
                if p.is_file() and not p.name.endswith(WEIGHT_FILES)}


def hf_classifier_from_files(name: str, files: dict[str, bytes], num_classes: int, max_length: int,
                             trust_remote_code: bool = False) -> tuple[nn.Module, "TextPrepare"]:
    """An untrained ``AutoModelForSequenceClassification`` and its ``prepare`` from :func:`hf_files` output."""
    import tempfile

    if "config.json" not in files:
        raise ValueError(f"model={name}: this predictor file holds no Hugging Face config.json; cannot rebuild it")
    tf = import_transformers()
    with tempfile.TemporaryDirectory() as tmp:
        for fname, data in files.items():
            if Path(fname).name != fname:
                raise ValueError(f"model={name}: refusing a stored file name with a path: {fname!r}")
            (Path(tmp) / fname).write_bytes(data)
        config = tf.AutoConfig.from_pretrained(tmp, trust_remote_code=trust_remote_code, local_files_only=True)
        tokenizer = tf.AutoTokenizer.from_pretrained(tmp, trust_remote_code=trust_remote_code, local_files_only=True)
    if int(config.num_labels) != int(num_classes):
        raise ValueError(f"model={name}: the stored config has {config.num_labels} labels, the file {num_classes}")
    module = tf.AutoModelForSequenceClassification.from_config(config, trust_remote_code=trust_remote_code)
    return module.eval(), TextPrepare(tokenizer, max_length, keys=tokenizer.model_input_names)
