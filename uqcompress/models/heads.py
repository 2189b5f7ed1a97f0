"""Pretrained image backbones adapted to a data set: one wrapper and one head-fitting routine for every family.

:class:`ImageClassifier` = :class:`Preprocess` (resize, gray->RGB, normalisation: inside the module, so int8 FX
quantization covers the whole model and a plain ``module(x)`` on [0, 1] images is right) -> ``backbone`` (pooled
features) -> ``head`` (Dropout + Linear). :func:`adapt` keeps a pretrained classifier when its class count is the
data's, or fits a new head on the fit split over frozen features; the features are computed once and cached
(``<cache>/features``), the head weights too (``<cache>/heads``). Used by ``efficientnet_lite0``, ``resnet18``,
``resnet50`` and ``timm``.

Example:
    >>> import torch
    >>> from uqcompress.models.heads import ImageClassifier
    >>> bb = torch.nn.Sequential(torch.nn.Conv2d(3, 8, 3), torch.nn.AdaptiveAvgPool2d(1), torch.nn.Flatten())
    >>> m = ImageClassifier(bb, 8, 5, in_channels=1, image_size=16).eval()
    >>> m(torch.rand(2, 1, 28, 28)).shape
    torch.Size([2, 5])
"""
from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any, Sequence

import torch
from torch import nn
from torch.nn import functional as F

from uqcompress.cache import cached, fingerprint
from uqcompress.data.base import DataBundle
from uqcompress.models import BuildContext
from uqcompress.models.base import ModelBundle, cached_weights, module_device
from uqcompress.models.train import fit_classifier

log = logging.getLogger(__name__)

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
HEAD_MODES = ("auto", "fit", "keep")
#: the ``model.*`` options :func:`adapt` reads (every pretrained image model has them)
ADAPT_OPTIONS = ("image_size", "head", "head_fit", "inference_batch_size")
HEAD_DEFAULTS = {"dropout": 0.5, "epochs": 100, "lr": 1e-3, "weight_decay": 1e-2, "batch_size": 128}
VERSION = 1  # bump when preprocessing or the head recipe changes: invalidates cached features and heads


class Preprocess(nn.Module):
    """[0, 1] images -> what the backbone was trained on: resize to ``image_size`` (bilinear; antialiased when
    shrinking), then gray->RGB and ``(x - mean) / std`` as one fixed 1x1 convolution.

    The affine step is a convolution (not tensor arithmetic) so that int8 FX quantizes it like any conv (per-channel
    weights, float bias: exact up to the activation rounding) instead of multiplying two quantized tensors. Every
    branch depends on construction-time attributes (the data's channel count and size), never on tensor shapes,
    so FX can trace it.
    """

    def __init__(self, in_channels: int = 3, image_size: int | None = None, input_size: int | None = None,
                 mean: Sequence[float] = IMAGENET_MEAN, std: Sequence[float] = IMAGENET_STD) -> None:
        super().__init__()
        if in_channels not in (1, 3):
            raise ValueError(f"pretrained image models take 1- or 3-channel images, not {in_channels}")
        self.in_channels = in_channels
        self.image_size = None if image_size in (None, input_size) else int(image_size)
        self.antialias = bool(self.image_size and input_size and self.image_size < input_size)
        mean_t = torch.tensor(mean, dtype=torch.float64)
        std_t = torch.tensor(std, dtype=torch.float64)
        self.affine = nn.Conv2d(in_channels, 3, 1, groups=in_channels, bias=True)  # gray: one input -> 3 outputs
        with torch.no_grad():
            self.affine.weight.copy_((1.0 / std_t).view(3, 1, 1, 1).float())
            self.affine.bias.copy_((-mean_t / std_t).float())
        self.affine.requires_grad_(False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.image_size is not None:
            x = F.interpolate(x, size=(self.image_size, self.image_size), mode="bilinear", align_corners=False,
                              antialias=self.antialias)
        return self.affine(x)

    def extra_repr(self) -> str:
        return f"in_channels={self.in_channels}, image_size={self.image_size}, antialias={self.antialias}"


class ImageClassifier(nn.Module):
    """``preprocess`` -> ``backbone`` (returns pooled features (N, F)) -> ``head`` = Dropout + Linear(F, K).

    ``head.1`` is the classifier layer the pipeline names as ``ModelBundle.head``; the dropout makes MC-dropout
    scorers usable on any backbone.
    """

    def __init__(self, backbone: nn.Module, num_features: int, num_classes: int, *, in_channels: int = 3,
                 image_size: int | None = None, input_size: int | None = None,
                 mean: Sequence[float] = IMAGENET_MEAN, std: Sequence[float] = IMAGENET_STD,
                 dropout: float = 0.2) -> None:
        super().__init__()
        self.preprocess = Preprocess(in_channels, image_size, input_size, mean, std)
        self.backbone = backbone
        self.head = nn.Sequential(nn.Dropout(dropout), nn.Linear(num_features, num_classes))

    def features(self, x: torch.Tensor) -> torch.Tensor:
        return self.backbone(self.preprocess(x))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(x))


@dataclass
class Pretrained:
    """A backbone with its original classifier split off, as a family builder hands it to :func:`adapt`.

    Attributes:
        backbone: module returning pooled features (its classifier replaced by ``nn.Identity``).
        num_features: F.
        classifier: the original ``nn.Linear(F, K0)`` (ImageNet: K0 = 1000), or None.
        source: where the weights came from (``"torchvision IMAGENET1K_V1"``, a file path, ``"random init"``).
        mean, std: the normalisation the weights were trained with.
        image_size: the native input size (the default for ``model.image_size``).
        version: bump when the family's module code changes what it computes or how it quantizes (cache keys).
    """

    backbone: nn.Module
    num_features: int
    classifier: nn.Linear | None
    source: str
    mean: Sequence[float] = IMAGENET_MEAN
    std: Sequence[float] = IMAGENET_STD
    image_size: int = 224
    version: int = 1


def _head_options(cfg: dict) -> dict[str, Any]:
    given = dict(cfg.get("head_fit") or {})
    unknown = set(given) - set(HEAD_DEFAULTS)
    if unknown:
        raise ValueError(f"unknown model.head_fit option(s) {sorted(unknown)}; choose from: {', '.join(HEAD_DEFAULTS)}")
    return {**HEAD_DEFAULTS, **given}


def wrap_backbone(pre: Pretrained, cfg: dict, num_classes: int, image_shape: Sequence[int]) -> ImageClassifier:
    """``pre``'s backbone behind the preprocessing for (C, H, W) inputs, with a fresh (untrained) head."""
    image_size = cfg.get("image_size") or pre.image_size
    model = ImageClassifier(pre.backbone, pre.num_features, int(num_classes), in_channels=int(image_shape[0]),
                            image_size=image_size, input_size=int(image_shape[-1]), mean=pre.mean, std=pre.std,
                            dropout=float(_head_options(cfg)["dropout"]))
    # channels-last weights: CPU (oneDNN) convs run ~2x faster in fp32; int8 FX repacks weights, so it is unaffected
    return model.to(memory_format=torch.channels_last).eval()


def image_architecture(name: str, pre: Pretrained, cfg: dict, num_classes: int,
                       input_shape: Sequence[int] | None) -> ModelBundle:
    """The untrained structure of an adapted pretrained model (what a saved SelectivePredictor rebuilds before
    loading its weights); ``pre`` needs no real weights."""
    if not input_shape:
        raise ValueError(f"rebuilding model '{name}' needs the input shape (C, H, W)")
    model = wrap_backbone(pre, cfg, num_classes, input_shape)
    return ModelBundle(model, name, fingerprint(name, "architecture", VERSION, list(input_shape), num_classes), "image",
                       int(num_classes), head="head.1")


def adapt(name: str, pre: Pretrained, cfg: dict, data: DataBundle, ctx: BuildContext) -> ModelBundle:
    """Wrap ``pre`` for ``data`` and give it a head with the data's class count; returns the model bundle.

    ``cfg['head']``: ``auto`` (default) keeps the pretrained classifier when it already has ``data.num_classes``
    outputs (e.g. a checkpoint fine-tuned on this data set) and fits a new one otherwise; ``fit`` always fits;
    ``keep`` requires the classifier to fit the data and fails clearly otherwise. A new head (dropout + linear) is
    trained with AdamW on frozen, cached features of the fit split (options in ``cfg['head_fit']``), extracted by
    ``ctx.runner`` (in ``model.inference_batch_size`` batches on the CPU).
    """
    seed, progress = ctx.seed, ctx.progress
    mode = cfg.get("head", "auto")
    if mode not in HEAD_MODES:
        raise ValueError(f"model.head={mode!r} is not one of: {', '.join(HEAD_MODES)}")
    opts = _head_options(cfg)
    k = int(data.num_classes)
    c, h = data.image_shape[0], data.image_shape[-1]
    image_size = cfg.get("image_size") or pre.image_size
    model = wrap_backbone(pre, cfg, k, data.image_shape)
    pre_k = None if pre.classifier is None else pre.classifier.out_features
    keep = pre_k == k and mode in ("auto", "keep")
    if mode == "keep" and not keep:
        raise ValueError(f"model.head=keep but the {name} classifier ({pre.source}) has {pre_k} outputs and data set "
                         f"'{data.name}' has {k} classes; use model.head=fit")
    backbone_fp = fingerprint(pre.backbone)
    prep = {"c": c, "input": h, "image_size": image_size, "mean": list(pre.mean), "std": list(pre.std),
            "version": pre.version}
    if keep:
        model.head[1].load_state_dict(pre.classifier.state_dict())
        head_info = "pretrained classifier kept"
    else:
        fit = data["fit"]
        feat_key = fingerprint("features", VERSION, name, backbone_fp, prep, fit.fingerprint())

        def _features() -> torch.Tensor:
            log.info("%s: extracting features of %d fit images at %s px", name, len(fit), image_size)
            bundle = ModelBundle(model, name, "building", "image", k, head="head.1")
            cpu_batch = cfg.get("inference_batch_size") if module_device(model).type == "cpu" else None  # see pipeline
            return ctx.runner.features(bundle, fit.x, split="fit", batch_size=int(cpu_batch or 64))

        feats = cached("features", feat_key, _features, log=log.info)
        head_key = fingerprint("head", feat_key, opts, k, seed)

        def _train(head: nn.Module) -> nn.Module:
            torch.manual_seed(seed)
            head[1].reset_parameters()
            return fit_classifier(head, feats, fit.y, epochs=int(opts["epochs"]), lr=float(opts["lr"]),
                                  weight_decay=float(opts["weight_decay"]), batch_size=int(opts["batch_size"]),
                                  seed=seed, progress=progress, desc=f"{name}:head")

        cached_weights(model.head, f"heads/{name}", head_key, _train, log=log.info)
        head_info = f"new head fit on {len(fit)} frozen-feature samples"
    model.eval()
    key = fingerprint(name, VERSION, backbone_fp, prep, model.head)
    info = {"weights": pre.source, "head": head_info, "image_size": image_size or h,
            "params": sum(p.numel() for p in model.parameters())}
    return ModelBundle(model, name, key, "image", k, head="head.1", info=info)
