"""The torchvision op-schema shim: torchvision and timm models build and run next to CPU torch."""
import subprocess
import sys

CODE = """
import torch
from uqcompress._compat import ensure_torchvision
tv = ensure_torchvision()
m = tv.models.resnet18(num_classes=4).eval()
assert m(torch.zeros(2, 3, 32, 32)).shape == (2, 4)
import timm
t = timm.create_model("resnet18", pretrained=False, num_classes=3).eval()
assert t(torch.zeros(1, 3, 32, 32)).shape == (1, 3)
from torchvision.ops import nms
boxes = torch.tensor([[0, 0, 10, 10], [1, 1, 10, 10], [20, 20, 30, 30.]])
keep = nms(boxes, torch.tensor([0.9, 0.8, 0.7]), 0.5)
assert keep.tolist() == [0, 2], keep
import torchvision.transforms.v2 as T
assert T.Resize(16)(torch.zeros(3, 32, 32)).shape == (3, 16, 16)
import uqcompress._compat as c
print("shimmed" if c.shimmed else "native")
"""


def test_torchvision_and_timm_models_run_in_a_fresh_interpreter():
    r = subprocess.run([sys.executable, "-c", CODE], capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr[-2000:]
    assert r.stdout.strip() in ("shimmed", "native")


def test_nms_fallback_matches_greedy_definition():
    import torch

    from uqcompress._compat import _nms_cpu

    g = torch.Generator().manual_seed(0)
    xy = torch.rand(50, 2, generator=g) * 50
    wh = torch.rand(50, 2, generator=g) * 20 + 1
    boxes = torch.cat([xy, xy + wh], 1)
    scores = torch.rand(50, generator=g)
    keep = _nms_cpu(boxes, scores, 0.3)
    # brute-force reference: walk in score order, keep a box iff IoU <= 0.3 with every kept box
    def iou(a, b):
        lt = torch.maximum(a[:2], b[:2]); rb = torch.minimum(a[2:], b[2:])
        inter = (rb - lt).clamp(min=0).prod()
        area = lambda x: (x[2:] - x[:2]).prod()
        return inter / (area(a) + area(b) - inter)
    ref = []
    for i in scores.argsort(descending=True).tolist():
        if all(iou(boxes[i], boxes[j]) <= 0.3 for j in ref):
            ref.append(i)
    assert keep.tolist() == ref
