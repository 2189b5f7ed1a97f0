"""Which input scaling and padding the packaged EfficientNet-Lite0 weights expect, measured on real CIFAR-10:
a logistic-regression probe on pooled features for {symmetric, TF "same"} padding x {ImageNet mean/std,
TF-Lite (255 x - 127) / 128} scaling. Decided ``model=efficientnet_lite0``'s choices (see its module doc).

Result on this machine (128 px, 800 fit / 400 test images): sym+imagenet 0.733, sym+tf 0.790, same+imagenet 0.745,
same+tf 0.782: the TF-Lite scaling matters (+5 points), the padding does not (within the 400-image noise).

Usage (reads the CIFAR-10 cache; ~10 min on 2 busy cores):
    PYTHONPATH=. python scripts/probe_efficientnet_lite.py --size 128 --n-fit 800 --n-test 400
"""
from __future__ import annotations

import argparse
import copy
import math
import sys
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from uqcompress.data import load_dataset  # noqa: E402
from uqcompress.models.efficientnet_lite import LITE_MEAN, LITE_STD, load_imagenet  # noqa: E402
from uqcompress.models.heads import IMAGENET_MEAN, IMAGENET_STD, Preprocess  # noqa: E402


class SamePad(nn.Module):
    """TF "same" padding around a conv whose own padding is removed (pads more at the bottom/right)."""

    def __init__(self, conv: nn.Conv2d) -> None:
        super().__init__()
        self.conv = conv

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        k, s = self.conv.kernel_size[0], self.conv.stride[0]
        n = x.shape[-1]
        pad = max((math.ceil(n / s) - 1) * s + k - n, 0)
        x = F.pad(x, [pad // 2, pad - pad // 2, pad // 2, pad - pad // 2])
        return F.conv2d(x, self.conv.weight, None, s, 0, 1, self.conv.groups)


def same_padded(model: nn.Module) -> nn.Module:
    model = copy.deepcopy(model)
    for mod in list(model.modules()):
        for name, child in list(mod.named_children()):
            if isinstance(child, nn.Conv2d) and child.kernel_size[0] > 1:
                child.padding = (0, 0)
                setattr(mod, name, SamePad(child))
    return model


@torch.inference_mode()
def features(model: nn.Module, pre: nn.Module, x: torch.Tensor) -> torch.Tensor:
    return torch.cat([model.features(pre(x[i : i + 100])) for i in range(0, len(x), 100)]).numpy()


def main() -> None:
    from sklearn.linear_model import LogisticRegression

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--size", type=int, default=128)
    ap.add_argument("--n-fit", type=int, default=800)
    ap.add_argument("--n-test", type=int, default=400)
    args = ap.parse_args()
    d = load_dataset({"name": "cifar10"}, seed=0)
    xf, yf = d["fit"].x[: args.n_fit], d["fit"].y[: args.n_fit].numpy()
    xt, yt = d["test"].x[: args.n_test], d["test"].y[: args.n_test].numpy()
    sym = load_imagenet()
    for pad_name, model in (("symmetric", sym), ("tf-same", same_padded(sym))):
        for scale_name, mean, std in (("imagenet", IMAGENET_MEAN, IMAGENET_STD), ("tf-lite", LITE_MEAN, LITE_STD)):
            pre = Preprocess(3, args.size, 32, mean, std)
            clf = LogisticRegression(max_iter=2000, C=0.5).fit(features(model, pre, xf), yf)
            acc = clf.score(features(model, pre, xt), yt)
            print(f"{args.size}px padding={pad_name:9s} scaling={scale_name:8s} probe accuracy {acc:.3f}", flush=True)


if __name__ == "__main__":
    main()
