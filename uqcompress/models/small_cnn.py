"""``model=small_cnn``: a small BatchNorm CNN with dropout, trained on the fit split on first use and cached.

It adapts to any input channel count and size (adaptive pooling) and to the data's class count, and is built from
int8-friendly blocks (Conv-BN-ReLU, Linear-ReLU) so static quantization fuses it.

Example:
    >>> import torch
    >>> from uqcompress.models.small_cnn import SmallCNN
    >>> SmallCNN(in_channels=3, num_classes=5)(torch.zeros(2, 3, 32, 32)).shape
    torch.Size([2, 5])
"""
from __future__ import annotations

import logging

import torch
from torch import nn

from uqcompress.cache import fingerprint
from uqcompress.data.base import DataBundle
from uqcompress.models import MODELS, BuildContext
from uqcompress.models.base import ModelBundle, cached_weights, require_modality
from uqcompress.models.train import fit_classifier

log = logging.getLogger(__name__)
VERSION = 1  # bump when the architecture or training recipe changes: invalidates cached weights


def _block(cin: int, cout: int) -> list[nn.Module]:
    return [nn.Conv2d(cin, cout, 3, padding=1, bias=False), nn.BatchNorm2d(cout), nn.ReLU()]


class SmallCNN(nn.Module):
    """Conv(32)x2 - pool - Conv(64)x2 - pool - adaptive pool 4x4 - dropout - FC(128) - dropout - FC(K)."""

    def __init__(self, in_channels: int = 1, num_classes: int = 10, width: int = 32, hidden: int = 128,
                 dropout: float = 0.3) -> None:
        super().__init__()
        w = width
        self.features = nn.Sequential(
            *_block(in_channels, w), *_block(w, w), nn.MaxPool2d(2),
            *_block(w, 2 * w), *_block(2 * w, 2 * w), nn.MaxPool2d(2),
            nn.AdaptiveAvgPool2d(4), nn.Flatten(),
        )
        self.classifier = nn.Sequential(
            nn.Dropout(dropout), nn.Linear(2 * w * 16, hidden), nn.ReLU(), nn.Dropout(dropout),
            nn.Linear(hidden, num_classes),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.features(x))


def random_shift(x: torch.Tensor, g: torch.Generator, max_shift: int = 2) -> torch.Tensor:
    """Augmentation: shift each image by up to ``max_shift`` pixels (zero fill), seeded by ``g``."""
    n = x.shape[0]
    pad = nn.functional.pad(x, [max_shift] * 4)
    dx = torch.randint(0, 2 * max_shift + 1, (n,), generator=g)
    dy = torch.randint(0, 2 * max_shift + 1, (n,), generator=g)
    h, w = x.shape[2:]
    rows = (dy[:, None] + torch.arange(h)[None]).view(n, 1, h, 1).expand(n, x.shape[1], h, w)
    cols = (dx[:, None] + torch.arange(w)[None]).view(n, 1, 1, w).expand(n, x.shape[1], h, w)
    return _gather2d(pad, rows, cols)


def _gather2d(pad: torch.Tensor, rows: torch.Tensor, cols: torch.Tensor) -> torch.Tensor:
    n, c, _, wp = pad.shape
    flat = pad.reshape(n, c, -1)
    idx = (rows * wp + cols).reshape(n, c, -1)
    return flat.gather(2, idx).reshape(rows.shape)


ARCH_DEFAULTS = {"width": 32, "hidden": 128, "dropout": 0.3}
TRAIN_DEFAULTS = {"epochs": 16, "lr": 3e-3, "batch_size": 64, "weight_decay": 1e-4, "augment": False}  # = the YAML


def _arch(cfg: dict) -> dict:
    return {k: cfg.get(k, d) for k, d in ARCH_DEFAULTS.items()}


def small_cnn_architecture(cfg: dict, num_classes: int, input_shape: tuple[int, ...], files: dict | None = None
                           ) -> ModelBundle:
    """The untrained architecture for (C, H, W) inputs: what a saved predictor rebuilds before loading its weights."""
    module = SmallCNN(in_channels=int(input_shape[0]), num_classes=int(num_classes), **_arch(cfg)).eval()
    return ModelBundle(module, "small_cnn", "architecture", "image", int(num_classes), head="classifier.4")


@MODELS.register("small_cnn", modality="image", architecture=small_cnn_architecture,
                 options=(*ARCH_DEFAULTS, *TRAIN_DEFAULTS))
def build_small_cnn(cfg: dict, data: DataBundle, ctx: BuildContext) -> ModelBundle:
    require_modality("small_cnn", "image", data)
    c = data.image_shape[0]
    arch = _arch(cfg)
    train = {k: cfg.get(k, d) for k, d in TRAIN_DEFAULTS.items()}
    fit = data["fit"]
    key = fingerprint("small_cnn", VERSION, arch, train, c, data.num_classes, fit.fingerprint(), ctx.seed)
    torch.manual_seed(ctx.seed)
    module = SmallCNN(in_channels=c, num_classes=data.num_classes, **arch)

    def _train(m: nn.Module) -> nn.Module:
        log.info("training small_cnn on %d %s images (%d epochs)", len(fit), data.name, train["epochs"])
        return fit_classifier(
            m, fit.x, fit.y, epochs=train["epochs"], lr=train["lr"], batch_size=train["batch_size"],
            weight_decay=train["weight_decay"], seed=ctx.seed, augment=random_shift if train["augment"] else None,
            progress=ctx.progress, desc="train small_cnn",
        )

    module = cached_weights(module, "models/small_cnn", key, _train, log=log.info)
    return ModelBundle(module, "small_cnn", key, "image", data.num_classes, head="classifier.4",
                       info={"params": sum(p.numel() for p in module.parameters())})
