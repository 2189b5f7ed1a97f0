"""``model=resnet18`` / ``model=resnet50``: torchvision ResNets, ImageNet-pretrained, adapted to the data set.

Weights, in order: ``model.weights=PATH`` (a local state_dict, ``weights_only=True``); else ``model.pretrained=true``
with ``model.weights=DEFAULT|IMAGENET1K_V1|IMAGENET1K_V2`` (the torch hub cache, downloaded when online; offline
and uncached: one line naming the expected path); ``model.pretrained=false`` builds random weights (seeded).
A classifier whose class count is not the data's is replaced by a head fit on frozen features
(:func:`uqcompress.models.heads.adapt`). Gray or small images (``data=mnist``) are repeated to RGB and resized to
``model.image_size`` inside the module.

Example:
    >>> from uqcompress.models.torchvision_models import resnet_pretrained
    >>> pre = resnet_pretrained("resnet18", {"pretrained": False}, seed=0)
    >>> pre.num_features, pre.classifier.out_features, pre.source
    (512, 1000, 'random init (seed 0)')
"""
from __future__ import annotations

import logging

import torch
from torch import nn

from uqcompress.data.base import DataBundle
from uqcompress.models import MODELS, BuildContext
from uqcompress.models.base import ModelBundle, require_modality
from uqcompress.models.heads import ADAPT_OPTIONS, IMAGENET_MEAN, IMAGENET_STD, Pretrained, adapt, image_architecture
from uqcompress.models.pretrained import classifier_outputs, hub_state_dict, is_path, load_strict, load_weights_file

log = logging.getLogger(__name__)

ARCHS = ("resnet18", "resnet50")


def resnet_pretrained(arch: str, cfg: dict, seed: int = 0, progress: bool = True) -> Pretrained:
    """A torchvision ResNet with its weights per ``cfg`` (see module doc), its ``fc`` split off as the classifier."""
    from uqcompress._compat import ensure_torchvision

    tv = ensure_torchvision()
    weights = cfg.get("weights")
    if weights is not None and is_path(weights):
        sd = load_weights_file(weights)
        model = getattr(tv.models, arch)(weights=None, num_classes=classifier_outputs(sd, "fc", arch, weights))
        load_strict(model, sd, arch, weights)
        source = str(weights)
    elif cfg.get("pretrained", True):
        enum = tv.models.get_model_weights(arch)
        tag = str(weights or "DEFAULT")
        if tag not in enum.__members__:
            raise ValueError(f"model.weights={tag!r} is not a {arch} weights tag or an existing file; choose one of: "
                             f"{', '.join(enum.__members__)}, or a path to a state_dict")
        w = enum[tag]
        sd = hub_state_dict(w.url, f"{arch} ImageNet weights ({w.name})", progress=progress)
        model = getattr(tv.models, arch)(weights=None, num_classes=len(w.meta["categories"]))
        load_strict(model, sd, arch, w.url)
        source = f"torchvision {arch} {w.name}"
    else:
        torch.manual_seed(seed)
        model = getattr(tv.models, arch)(weights=None)
        source = f"random init (seed {seed})"
    classifier = model.fc
    model.fc = nn.Identity()
    return Pretrained(model.eval(), classifier.in_features, classifier, source, IMAGENET_MEAN, IMAGENET_STD, 224)


def _builder(arch: str):
    def build(cfg: dict, data: DataBundle, ctx: BuildContext) -> ModelBundle:
        require_modality(arch, "image", data)
        pre = resnet_pretrained(arch, cfg, ctx.seed, ctx.progress)
        return adapt(arch, pre, cfg, data, ctx)

    build.__name__ = f"build_{arch}"
    build.__doc__ = f"Builder of ``model={arch}`` (see module doc)."
    return build


def _architecture(arch: str):
    def architecture(cfg: dict, num_classes: int, input_shape: tuple[int, ...], files: dict | None = None
                     ) -> ModelBundle:
        pre = resnet_pretrained(arch, {**cfg, "pretrained": False, "weights": None})
        return image_architecture(arch, pre, cfg, num_classes, input_shape)

    architecture.__doc__ = f"Untrained ``{arch}`` structure for a saved predictor (the file holds every weight)."
    return architecture


for _arch in ARCHS:
    MODELS.register(_arch, _builder(_arch), modality="image", architecture=_architecture(_arch),
                    options=("pretrained", "weights", *ADAPT_OPTIONS))
