"""Make torchvision (and timm) importable next to a CPU torch whose torchvision wheel has no matching ops library.

On some machines the torchvision 0.28.0 wheel is a CUDA build; next to CPU torch 2.13.0 its compiled ``_C`` library
fails to load and ``import torchvision`` dies with ``operator torchvision::nms does not exist`` (torchvision registers
fake kernels for ops it assumes exist). :func:`ensure_torchvision` defines the missing op *schemas* with
``torch.library`` before torchvision is imported, plus a pure-torch CPU ``nms``; models and transforms then work.
Detection ops other than ``nms`` raise a clear error if called. Nothing happens where the real library loads.

Example:
    >>> from uqcompress._compat import ensure_torchvision
    >>> tv = ensure_torchvision()
    >>> tv.models.resnet18(num_classes=3)(__import__("torch").zeros(1, 3, 32, 32)).shape
    torch.Size([1, 3])
"""
from __future__ import annotations

import importlib.util
import os
import sys
import warnings
from types import ModuleType

import torch

_SCHEMAS = {
    "nms": "nms(Tensor dets, Tensor scores, float iou_threshold) -> Tensor",
    "roi_align": "roi_align(Tensor input, Tensor rois, float spatial_scale, SymInt pooled_height, "
    "SymInt pooled_width, int sampling_ratio, bool aligned) -> Tensor",
    "_roi_align_backward": "_roi_align_backward(Tensor grad, Tensor rois, float spatial_scale, SymInt pooled_height, "
    "SymInt pooled_width, SymInt batch_size, SymInt channels, SymInt height, SymInt width, int sampling_ratio, "
    "bool aligned) -> Tensor",
    "roi_pool": "roi_pool(Tensor input, Tensor rois, float spatial_scale, SymInt pooled_height, "
    "SymInt pooled_width) -> (Tensor, Tensor)",
    "_roi_pool_backward": "_roi_pool_backward(Tensor grad, Tensor rois, Tensor argmax, float spatial_scale, "
    "SymInt pooled_height, SymInt pooled_width, SymInt batch_size, SymInt channels, SymInt height, "
    "SymInt width) -> Tensor",
    "ps_roi_align": "ps_roi_align(Tensor input, Tensor rois, float spatial_scale, SymInt pooled_height, "
    "SymInt pooled_width, int sampling_ratio) -> (Tensor, Tensor)",
    "_ps_roi_align_backward": "_ps_roi_align_backward(Tensor grad, Tensor rois, Tensor channel_mapping, "
    "float spatial_scale, SymInt pooled_height, SymInt pooled_width, int sampling_ratio, SymInt batch_size, "
    "SymInt channels, SymInt height, SymInt width) -> Tensor",
    "ps_roi_pool": "ps_roi_pool(Tensor input, Tensor rois, float spatial_scale, SymInt pooled_height, "
    "SymInt pooled_width) -> (Tensor, Tensor)",
    "_ps_roi_pool_backward": "_ps_roi_pool_backward(Tensor grad, Tensor rois, Tensor channel_mapping, "
    "float spatial_scale, SymInt pooled_height, SymInt pooled_width, SymInt batch_size, SymInt channels, "
    "SymInt height, SymInt width) -> Tensor",
    "qnms": "qnms(Tensor dets, Tensor scores, float iou_threshold) -> Tensor",
    "qroi_align": "qroi_align(Tensor input, Tensor rois, float input_scale, int input_zero_point, float rois_scale, "
    "int rois_zero_point, float spatial_scale, SymInt pooled_height, SymInt pooled_width, int sampling_ratio, "
    "bool aligned) -> Tensor",
    "box_iou_rotated": "box_iou_rotated(Tensor boxes1, Tensor boxes2) -> Tensor",
    "deform_conv2d": "deform_conv2d(Tensor input, Tensor weight, Tensor offset, Tensor mask, Tensor bias, "
    "SymInt stride_h, SymInt stride_w, SymInt pad_h, SymInt pad_w, SymInt dilation_h, SymInt dilation_w, "
    "SymInt groups, SymInt offset_groups, bool use_mask) -> Tensor",
    "_deform_conv2d_backward": "_deform_conv2d_backward(Tensor grad, Tensor input, Tensor weight, Tensor offset, "
    "Tensor mask, Tensor bias, SymInt stride_h, SymInt stride_w, SymInt pad_h, SymInt pad_w, SymInt dilation_h, "
    "SymInt dilation_w, SymInt groups, SymInt offset_groups, bool use_mask) -> (Tensor, Tensor, Tensor, Tensor, Tensor)",
}

_LIB: torch.library.Library | None = None  # kept alive: dropping it would unregister the schemas
shimmed: bool = False  # True when the schemas were defined by this module


def _nms_cpu(dets: torch.Tensor, scores: torch.Tensor, iou_threshold: float) -> torch.Tensor:
    """Greedy non-maximum suppression in plain torch (indices kept, by descending score)."""
    if dets.numel() == 0:
        return torch.empty(0, dtype=torch.long, device=dets.device)
    x1, y1, x2, y2 = dets.unbind(1)
    areas = (x2 - x1) * (y2 - y1)
    order = scores.argsort(descending=True)
    keep = []
    suppressed = torch.zeros(len(order), dtype=torch.bool)
    for i_pos in range(len(order)):
        if suppressed[i_pos]:
            continue
        i = order[i_pos]
        keep.append(i)
        rest = order[i_pos + 1 :]
        xx1 = torch.maximum(x1[i], x1[rest])
        yy1 = torch.maximum(y1[i], y1[rest])
        xx2 = torch.minimum(x2[i], x2[rest])
        yy2 = torch.minimum(y2[i], y2[rest])
        inter = (xx2 - xx1).clamp(min=0) * (yy2 - yy1).clamp(min=0)
        iou = inter / (areas[i] + areas[rest] - inter)
        suppressed[i_pos + 1 :] |= iou > iou_threshold
    return torch.stack(keep)


def _torchvision_ops_load() -> bool:
    """Whether torchvision's compiled ops library loads (checked without importing torchvision itself)."""
    if hasattr(torch.ops, "torchvision") and hasattr(torch.ops.torchvision, "nms"):
        return True
    spec = importlib.util.find_spec("torchvision")
    if spec is None or not spec.submodule_search_locations:
        return False
    folder = list(spec.submodule_search_locations)[0]
    libs = [f for f in os.listdir(folder) if f.startswith("_C") and f.endswith((".so", ".pyd"))]
    for lib in libs:
        try:
            torch.ops.load_library(os.path.join(folder, lib))
            return True
        except (OSError, RuntimeError):
            continue
    return False


def install_shim() -> bool:
    """Define torchvision's op schemas if its library cannot load. Returns True when the shim was installed."""
    global _LIB, shimmed
    if shimmed or "torchvision" in sys.modules or _torchvision_ops_load():
        return shimmed
    _LIB = torch.library.Library("torchvision", "DEF")
    for schema in _SCHEMAS.values():
        _LIB.define(schema)
    _LIB.impl("nms", _nms_cpu, "CPU")
    for name in _SCHEMAS:
        if name != "nms":
            _LIB.impl(name, _unavailable(name), "CPU")
    shimmed = True
    warnings.filterwarnings("ignore", message="Failed to load image Python extension")
    warnings.filterwarnings("ignore", message=".*torchvision::.*")
    return True


def _unavailable(name: str):
    def fn(*args, **kwargs):
        raise RuntimeError(
            f"torchvision op '{name}' is unavailable: this torchvision wheel does not match the installed torch "
            "(reinstall with `pip install torch==2.13.0 torchvision==0.28.0` from the same index)"
        )

    return fn


def ensure_torchvision() -> ModuleType:
    """Import and return torchvision, installing the op-schema shim first when needed."""
    install_shim()
    import torchvision

    if shimmed:  # our schemas stand in for the library: let torchvision.ops call them (nms works, others explain)
        torchvision.extension._has_ops = lambda: True
    return torchvision
