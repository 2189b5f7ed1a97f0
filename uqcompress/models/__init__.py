"""Models, keyed by their Hydra config name (``model=small_cnn``).

One registry entry (:class:`ModelEntry`) per model carries everything about it: how to build it for a data set
(``fn(cfg, data, ctx) -> ModelBundle``: adapts to the input shape and class count, trains or loads what it needs,
cached by a fingerprint of everything that determines the weights), the modality it takes, and how to rebuild its
bare architecture without weights or data (``architecture``), which a saved SelectivePredictor uses; None = the model
cannot be deployed.

Example:
    >>> from uqcompress.models import MODELS
    >>> MODELS.get("small_cnn").modality, MODELS.get("small_cnn").deployable
    ('image', True)
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable, Mapping

from uqcompress.models.base import ModelBundle, call_module, check_num_classes
from uqcompress.registry import Registry


@dataclass(frozen=True)
class ModelEntry:
    """Everything about one model.

    Attributes:
        name: the ``model=`` name.
        fn: ``fn(cfg, data, ctx) -> ModelBundle`` builds (trains / loads) the model for a data set.
        modality: the inputs it takes (``image`` / ``text`` / ``multiple_choice``), or None when it depends on the
            config (``model=checkpoint``: a state_dict file is an image model, a Hugging Face folder a text model).
        architecture: ``architecture(cfg, num_classes, input_shape, files) -> ModelBundle`` with untrained weights
            and no data access; ``cfg`` is the run's model config merged with the built bundle's ``arch`` facts and
            ``files`` its ``arch_files`` (small non-weight files such as a tokenizer). None = not deployable.
        options: the ``model.*`` options it reads (checked before any work by :mod:`uqcompress.validate`; a typo is
            a one-line error naming the close matches). None = not declared (not checked).
    """

    name: str
    fn: Callable[..., ModelBundle]
    modality: str | None = None
    architecture: Callable[..., ModelBundle] | None = None
    options: tuple[str, ...] | None = None

    def __call__(self, cfg: dict, data: Any, ctx: "BuildContext") -> ModelBundle:
        return self.fn(cfg, data, ctx)

    @property
    def deployable(self) -> bool:
        return self.architecture is not None

    def rebuild_architecture(self, cfg: dict, num_classes: int, input_shape: Any = None,
                             files: Mapping[str, bytes] | None = None) -> ModelBundle:
        """The untrained structure a saved predictor loads its weights into."""
        if self.architecture is None:
            raise ValueError(f"model={self.name} has no architecture entry: it cannot be rebuilt from a saved file")
        return self.architecture(cfg, int(num_classes), tuple(input_shape) if input_shape else None, dict(files or {}))


MODELS = Registry("model", package="uqcompress.models", entry=ModelEntry)


@dataclass
class BuildContext:
    """Run-wide settings a model builder may need; ``runner`` runs its inference passes (fit-split features)."""

    seed: int = 0
    device: str = "cpu"
    progress: bool = True
    runner: Any = field(default=None)

    def __post_init__(self) -> None:
        if self.runner is None:
            from uqcompress.runner import Runner

            self.runner = Runner("cpu", progress=self.progress)


def build_model(cfg: dict, data, ctx: BuildContext | None = None) -> ModelBundle:
    """Build the model named ``cfg['name']`` for ``data``."""
    bundle = MODELS.get(cfg["name"])(cfg, data, ctx or BuildContext())
    if bundle.modality != data.modality:
        raise ValueError(
            f"model '{cfg['name']}' takes {bundle.modality} inputs but data set '{data.name}' is {data.modality}"
        )
    check_num_classes(cfg["name"], bundle.num_classes, data.name, data.num_classes)
    return bundle


__all__ = ["MODELS", "BuildContext", "ModelBundle", "ModelEntry", "build_model", "call_module"]
