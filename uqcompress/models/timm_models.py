"""``model=timm model.arch=NAME``: any timm image model, adapted to the data set.

``model.arch`` is a timm model name with an optional weights tag (``resnet18.a1_in1k``); the config key is ``arch``
because ``model.name`` is the registry name (``timm``). Weights: ``model.weights=PATH`` (a local state_dict) wins;
else ``model.pretrained=true`` loads timm's pretrained weights (Hugging Face hub / URL cache, downloaded when
online; offline and uncached: one line naming the expected cache path); ``model.pretrained=false`` is random.
Normalisation and the default input size come from the model's ``pretrained_cfg``.

Example:
    >>> from uqcompress.models.timm_models import timm_pretrained
    >>> pre = timm_pretrained("resnet10t", {"pretrained": False}, seed=0)
    >>> pre.num_features, pre.classifier.out_features
    (512, 1000)
"""
from __future__ import annotations

import difflib
import logging
from pathlib import Path

import torch
from torch import nn

from uqcompress.data.base import DataBundle
from uqcompress.models import MODELS, BuildContext
from uqcompress.models.base import ModelBundle, require_modality
from uqcompress.models.heads import ADAPT_OPTIONS, Pretrained, adapt, image_architecture
from uqcompress.models.pretrained import (OFFLINE_HINT, classifier_outputs, hub_checkpoint_path, load_strict,
                                          load_weights_file)

log = logging.getLogger(__name__)


def _timm():
    from uqcompress._compat import ensure_torchvision

    ensure_torchvision()  # timm imports torchvision
    try:
        import timm
    except ImportError:
        raise ModuleNotFoundError("model=timm needs the 'timm' package; install it with: pip install timm") from None
    return timm


def _check_arch(timm, arch: str) -> None:
    base = arch.split(".")[0]
    if not timm.is_model(base):
        close = difflib.get_close_matches(base, timm.list_models(), n=5)
        hint = f"; close matches: {', '.join(close)}" if close else "; see timm.list_models()"
        raise ValueError(f"model.arch={arch!r} is not a timm model{hint}")


def _pretrained_cfg(timm, arch: str) -> dict:
    """timm's default pretrained config of ``arch`` (classifier name, weights source) without building the model."""
    cfg = timm.models.get_pretrained_cfg(arch)
    return cfg.to_dict() if cfg is not None else {}


def expected_cache(pretrained_cfg: dict) -> str:
    """Where timm would find the pretrained weights without a network (HF hub cache folder or torch hub file)."""
    if pretrained_cfg.get("hf_hub_id"):
        from huggingface_hub import constants

        repo = pretrained_cfg["hf_hub_id"].split("@")[0]
        return str(Path(constants.HF_HUB_CACHE) / f"models--{repo.replace('/', '--')}")
    if pretrained_cfg.get("url"):
        return str(hub_checkpoint_path(pretrained_cfg["url"]))
    return "(no pretrained source known to timm)"


def timm_pretrained(arch: str, cfg: dict, seed: int = 0, progress: bool = True) -> Pretrained:
    """A timm model with its weights per ``cfg`` (see module doc), its classifier split off."""
    timm = _timm()
    if not arch:
        raise ValueError("model=timm needs model.arch=NAME (a timm model name, e.g. resnet18.a1_in1k)")
    _check_arch(timm, arch)
    weights = cfg.get("weights")
    torch.manual_seed(seed)
    default_cfg = _pretrained_cfg(timm, arch)
    if weights:
        sd = load_weights_file(weights)
        classifier = default_cfg.get("classifier") or "fc"
        model = timm.create_model(arch, pretrained=False,
                                  num_classes=classifier_outputs(sd, classifier, arch, weights))
        load_strict(model, sd, arch, weights)
        source = str(weights)
    elif cfg.get("pretrained", True):
        try:
            model = timm.create_model(arch, pretrained=True)
        except Exception as e:  # offline: huggingface_hub / urllib errors of many types
            msg = str(e).splitlines()[0] if str(e) else ""
            raise FileNotFoundError(
                f"timm '{arch}' pretrained weights are not cached (expected at {expected_cache(default_cfg)}) and "
                f"cannot be downloaded ({type(e).__name__}: {msg[:200]}); {OFFLINE_HINT}"
            ) from None
        source = f"timm {arch} pretrained ({model.pretrained_cfg.get('tag') or 'default'})"
    else:
        model = timm.create_model(arch, pretrained=False)
        source = f"random init (seed {seed})"
    pcfg = model.pretrained_cfg
    head = model.get_classifier()
    classifier = head if isinstance(head, nn.Linear) else None
    model.reset_classifier(0)
    model.eval()
    size = int(pcfg.get("input_size", (3, 224, 224))[-1])
    with torch.inference_mode():
        num_features = int(model(torch.zeros(1, 3, size, size)).shape[-1])
    if classifier is not None and classifier.in_features != num_features:  # e.g. a pre-logits layer in between
        classifier = None
    return Pretrained(model, num_features, classifier, source, tuple(pcfg.get("mean", (0.485, 0.456, 0.406))),
                      tuple(pcfg.get("std", (0.229, 0.224, 0.225))), size)


def timm_architecture(cfg: dict, num_classes: int, input_shape: tuple[int, ...], files: dict | None = None
                      ) -> ModelBundle:
    """Untrained ``model.arch`` structure for a saved predictor (the file holds every weight)."""
    arch = cfg.get("arch")
    pre = timm_pretrained(arch, {**cfg, "pretrained": False, "weights": None})
    return image_architecture(f"timm-{arch}", pre, cfg, num_classes, input_shape)


@MODELS.register("timm", modality="image", architecture=timm_architecture,
                 options=("arch", "pretrained", "weights", *ADAPT_OPTIONS))
def build_timm(cfg: dict, data: DataBundle, ctx: BuildContext) -> ModelBundle:
    require_modality("timm", "image", data)
    arch = cfg.get("arch")
    pre = timm_pretrained(arch, cfg, ctx.seed, ctx.progress)
    return adapt(f"timm-{arch}", pre, cfg, data, ctx)
