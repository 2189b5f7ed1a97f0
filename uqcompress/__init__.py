"""uqcompress: uncertainty-aware selective prediction around a baseline model and its compressed versions.

Reports what compression changed beyond accuracy: flips, KL, calibration, selective risk, saved-from-misclassification
rate and OOD detection. Two front doors over one pipeline: ``python -m uqcompress`` (Hydra) and :func:`evaluate`
(:func:`evaluate_outputs` for stored logits or probabilities of models run elsewhere).

Example:
    >>> from uqcompress import metrics as M
    >>> M.accuracy([[0.9, 0.1], [0.2, 0.8]], [0, 0])
    0.5
"""
from __future__ import annotations

from typing import Any

__version__ = "0.1.0"

_LAZY = {
    "evaluate": ("uqcompress.api", "evaluate"),
    "evaluate_outputs": ("uqcompress.api", "evaluate_outputs"),
    "SelectivePredictor": ("uqcompress.predictor", "SelectivePredictor"),
    "metrics": ("uqcompress.metrics", None),
}


def __getattr__(name: str) -> Any:  # lazy: `import uqcompress` stays cheap and torchvision-free
    if name in _LAZY:
        import importlib

        mod, attr = _LAZY[name]
        m = importlib.import_module(mod)
        return m if attr is None else getattr(m, attr)
    raise AttributeError(f"module 'uqcompress' has no attribute '{name}'")


__all__ = ["evaluate", "evaluate_outputs", "SelectivePredictor", "metrics", "__version__"]
