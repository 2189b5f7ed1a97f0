"""What every model hands to the pipeline: an ``nn.Module`` returning logits, plus how to feed it.

Example:
    >>> import torch
    >>> from uqcompress.models.base import ModelBundle
    >>> m = ModelBundle(torch.nn.Linear(4, 3), name="lin", fingerprint="x", modality="image", num_classes=3)
    >>> m.logits(torch.zeros(2, 4)).shape
    torch.Size([2, 3])
"""
from __future__ import annotations

import copy
from dataclasses import dataclass, field, replace
from typing import Any, Callable

import torch
from torch import nn


def _identity(x: Any) -> Any:
    return x


@dataclass
class ModelBundle:
    """A classifier as the pipeline sees it.

    Attributes:
        module: ``forward(inputs) -> logits (B, K)``; inputs are a tensor, or a dict of tensors passed as keywords.
        name: registry name of the model.
        fingerprint: hash of everything that determines the weights (cache key).
        modality: the data modality it accepts (``image`` / ``text`` / ``multiple_choice``).
        num_classes: K.
        prepare: raw batch (tensor slice or list of str) -> module inputs (e.g. a tokenizer); not part of the module,
            so compression never touches it.
        head: qualified name of the classifier head submodule; its input is the penultimate feature vector.
        info: facts worth reporting (e.g. "baseline is a dequantized 4-bit model"); every scalar or list fact a
            compression scheme adds reaches ``results.json`` under ``compressed.*``.
        arch: JSON-able facts the model entry's ``architecture`` needs beyond the run's model config to rebuild the
            structure without weights (e.g. a checkpoint's resolved library and channel count).
        arch_files: small non-weight files the architecture needs (a tokenizer, a Hugging Face ``config.json``);
            a saved predictor stores them.
        quant: the resolved scheme config that rebuilds this module from the architecture (``{"name": "none"}`` for
            an uncompressed model).
    """

    module: nn.Module
    name: str
    fingerprint: str
    modality: str
    num_classes: int
    prepare: Callable[[Any], Any] = _identity
    head: str | None = None
    info: dict[str, Any] = field(default_factory=dict)
    arch: dict[str, Any] = field(default_factory=dict)
    arch_files: dict[str, bytes] = field(default_factory=dict)
    quant: dict[str, Any] = field(default_factory=lambda: {"name": "none"})

    @property
    def label(self) -> str:
        """``name`` plus the compression scheme, for logs and progress bars (``small_cnn[int8]``)."""
        scheme = self.info.get("scheme")
        return f"{self.name}[{scheme}]" if scheme else self.name

    def logits(self, batch: Any) -> torch.Tensor:
        """Logits (float32, on the CPU) for a raw batch, through a :class:`~uqcompress.runner.Runner` on the
        module's device."""
        from uqcompress.runner import Runner

        return Runner(module_device(self.module), progress=False).logits(self, batch)

    def with_module(self, module: nn.Module, fingerprint: str, *, quant: dict[str, Any] | None = None,
                    **info: Any) -> "ModelBundle":
        """A copy around another module (e.g. the compressed one), same ``prepare``; ``info`` is merged and ``quant``
        (the config that rebuilds ``module``) replaces the old one when given."""
        return replace(self, module=module, fingerprint=fingerprint, info={**self.info, **info},
                       quant=dict(quant) if quant is not None else dict(self.quant))

    def clone_module(self) -> nn.Module:
        return copy.deepcopy(self.module)


def call_module(module: nn.Module, inputs: Any) -> torch.Tensor:
    """``module(**inputs)`` for dict inputs, ``module(inputs)`` otherwise; unwraps HF-style outputs to logits."""
    out = module(**inputs) if isinstance(inputs, dict) else module(inputs)
    if hasattr(out, "logits"):
        out = out.logits
    return out


def module_device(module: nn.Module) -> torch.device:
    """Where the module's first parameter (or buffer) lives; the CPU for a module without tensors.

    >>> module_device(nn.Linear(2, 2))
    device(type='cpu')
    """
    for m in module.modules():  # the first tensor found; cheaper than parameters() + buffers() on big graphs
        for t in m._parameters.values():
            if t is not None:
                return t.device
        for t in m._buffers.values():
            if t is not None:
                return t.device
    return torch.device("cpu")


def get_submodule(module: nn.Module, name: str | None) -> nn.Module | None:
    if not name:
        return None
    try:
        return module.get_submodule(name)
    except AttributeError:
        return None


def check_num_classes(model_name: str, model_classes: int, data_name: str, data_classes: int | None) -> None:
    """Refuse a data set whose labels exceed the model's classes, naming both numbers."""
    if data_classes is not None and data_classes > model_classes:
        raise ValueError(
            f"data set '{data_name}' has {data_classes} classes but model '{model_name}' predicts {model_classes}"
        )


def require_modality(model_name: str, modality: str, data) -> None:
    """Refuse, before any work, a data set of another modality (e.g. a text model on images)."""
    if data.modality != modality:
        raise ValueError(f"model '{model_name}' takes {modality} inputs but data set '{data.name}' is {data.modality}")


def cached_weights(module: nn.Module, kind: str, key: str, train: Callable[[nn.Module], nn.Module],
                   log: Callable[[str], None] | None = None) -> nn.Module:
    """Load ``module``'s trained state from the cache entry ``kind/key``, or ``train`` it and store the state.

    The entry is bound to ``kind/key`` and verified by the sha256 of its tensors (see :func:`uqcompress.cache.cached`):
    a state of another key, a random init swapped in, or one that does not fit ``module`` is retrained, never loaded.
    Concurrent jobs wait for one training under a lock; each training is a ``compute`` event of kind ``kind``.
    """
    from uqcompress.cache import cached_entry, entry_path, state_mismatch

    trained: dict[str, nn.Module] = {}

    def _train() -> dict:
        trained["module"] = train(module)
        return trained["module"].state_dict()

    state, hit = cached_entry(kind, key, _train, check=lambda s: state_mismatch(module, s))
    if hit:
        module.load_state_dict(state)
    else:
        module = trained["module"]
    if log:
        log(f"loaded cached {kind} {entry_path(kind, key)}" if hit else f"trained {kind} (cache key {key})")
    return module.eval()


def find_head(module: nn.Module) -> str | None:
    """Qualified name of the last ``nn.Linear`` registered in ``module`` (the usual classifier head), or None."""
    name = None
    for n, m in module.named_modules():
        if isinstance(m, nn.Linear):
            name = n
    return name
