"""Models, keyed by their Hydra config name (``model=small_cnn``).

A builder is ``fn(cfg: dict, data: DataBundle, ctx: BuildContext) -> ModelBundle``. It adapts to the data
(input shape, class count) and trains or loads what it needs, cached by a fingerprint of everything that
determines the weights.

Example:
    >>> from uqcompress.models import MODELS
    >>> "small_cnn" in MODELS
    True
"""
from __future__ import annotations

from dataclasses import dataclass

from uqcompress.models.base import ModelBundle, call_module, check_num_classes
from uqcompress.registry import Registry

MODELS = Registry("model", package="uqcompress.models")
#: Architecture-only builders keyed like MODELS: ``fn(cfg, num_classes, input_shape) -> ModelBundle`` with untrained
#: weights and no data access, so a saved SelectivePredictor can rebuild its module without the training data.
ARCHITECTURES = Registry("architecture", package="uqcompress.models")


@dataclass
class BuildContext:
    """Run-wide settings a model builder may need."""

    seed: int = 0
    device: str = "cpu"
    progress: bool = True


def build_model(cfg: dict, data, ctx: BuildContext | None = None) -> ModelBundle:
    """Build the model named ``cfg['name']`` for ``data``."""
    bundle = MODELS.get(cfg["name"])(cfg, data, ctx or BuildContext())
    if bundle.modality != data.modality:
        raise ValueError(
            f"model '{cfg['name']}' takes {bundle.modality} inputs but data set '{data.name}' is {data.modality}"
        )
    check_num_classes(cfg["name"], bundle.num_classes, data.name, data.num_classes)
    return bundle


__all__ = ["ARCHITECTURES", "MODELS", "BuildContext", "ModelBundle", "build_model", "call_module"]
