"""``model=checkpoint model.path=FILE model.arch=NAME``: evaluate your own trained weights, no registry entry needed.

Two kinds of checkpoint:

* a **state_dict file** (``torch.save(model.state_dict(), FILE)``, or a dict holding it under ``state_dict`` /
  ``model`` / ..., or ``.safetensors``) for ``model.arch`` = ``small_cnn``, any torchvision name (``resnet18``) or
  any timm name (``timm:resnet18`` / ``torchvision:resnet18`` pick the library; a bare name tries torchvision then
  timm). Loaded with ``weights_only=True``; a ``module.`` / ``model.`` prefix (DataParallel, Lightning) is stripped.
  ``model.num_classes`` defaults to the data's class count; the input channel count is read off the checkpoint and
  gray data is fed to an RGB model (and vice versa) by repeating / averaging channels. ``model.mean`` /
  ``model.std`` (lists, a number, or ``imagenet``) normalise inputs inside a small wrapper module, so int8 FX
  still traces it.
* a **Hugging Face folder** (``model.path=DIR`` with ``config.json``) of a sequence classifier for text data:
  ``AutoModelForSequenceClassification`` + its tokenizer (``model.max_length``), read offline;
  ``model.trust_remote_code`` stays false unless you set it.

Key, shape and class-count mismatches are one-line errors naming the file and the first few keys / both numbers.

Example:
    >>> import tempfile, torch
    >>> from uqcompress.data.base import DataBundle, Split
    >>> from uqcompress.models import build_model
    >>> from uqcompress.models.small_cnn import SmallCNN
    >>> path = tempfile.mktemp(suffix=".pt")
    >>> torch.save(SmallCNN(in_channels=1, num_classes=4).state_dict(), path)
    >>> data = DataBundle("toy", "image", 4, {"test": Split(torch.rand(8, 1, 20, 24), torch.arange(8) % 4)})
    >>> m = build_model({"name": "checkpoint", "path": path, "arch": "small_cnn"}, data)
    >>> m.logits(data["test"].x).shape
    torch.Size([8, 4])
"""
from __future__ import annotations

import hashlib
import logging
from pathlib import Path
from typing import Any

import torch
from torch import nn

from uqcompress.cache import fingerprint, hash_file, safe_torch_load
from uqcompress.data.base import DataBundle
from uqcompress.models import MODELS, BuildContext
from uqcompress.models.base import ModelBundle, find_head, require_modality
from uqcompress.models.text import TextPrepare, hf_files, hf_classifier_from_files

log = logging.getLogger(__name__)
VERSION = 1  # bump when loading or wrapping changes what the module computes

IMAGENET = {"mean": (0.485, 0.456, 0.406), "std": (0.229, 0.224, 0.225)}
_WRAPPER_KEYS = ("state_dict", "model_state_dict", "model", "module", "net", "weights")


class Preprocess(nn.Module):
    """``model((channels(x) - mean) / std)``: channel repeat / average and normalisation as plain ops + buffers,
    so FX (int8 static) traces it and the inner model stays untouched.

    Example:
        >>> m = Preprocess(nn.Flatten(), mean=[0.5], std=[0.25], in_channels=1, model_channels=3)
        >>> m(torch.ones(1, 1, 2, 2)).tolist()
        [[2.0, 2.0, 2.0, 2.0, 2.0, 2.0, 2.0, 2.0, 2.0, 2.0, 2.0, 2.0]]
    """

    def __init__(self, model: nn.Module, mean: list[float] | None = None, std: list[float] | None = None,
                 in_channels: int | None = None, model_channels: int | None = None) -> None:
        super().__init__()
        self.model = model
        self.repeat = model_channels if (in_channels == 1 and model_channels and model_channels > 1) else 1
        self.average = bool(model_channels == 1 and in_channels and in_channels > 1)
        self.normalize = mean is not None
        if mean is not None:
            self.register_buffer("mean", torch.tensor(mean, dtype=torch.float32).view(1, -1, 1, 1))
            self.register_buffer("std", torch.tensor(std, dtype=torch.float32).view(1, -1, 1, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.repeat > 1:
            x = x.repeat(1, self.repeat, 1, 1)
        if self.average:
            x = x.mean(1, keepdim=True)
        if self.normalize:
            x = (x - self.mean) / self.std
        return self.model(x)


class ClassCountMismatch(ValueError):
    """The checkpoint's head predicts another number of classes than asked for (no other library is tried)."""


# ---------------------------------------------------------------- reading a state_dict
def read_state_dict(path: Path) -> dict[str, torch.Tensor]:
    """The tensors of a checkpoint file, read safely (``weights_only=True`` or safetensors)."""
    if path.suffix == ".safetensors":
        from safetensors.torch import load_file

        try:
            return load_file(str(path))
        except Exception as e:
            raise ValueError(f"checkpoint {path} is not a readable safetensors file ({type(e).__name__})") from None
    try:
        obj = safe_torch_load(path, what="checkpoint")
    except ValueError as e:
        raise ValueError(f"{e}; save weights with torch.save(model.state_dict(), FILE), not the whole model") \
            from None
    if isinstance(obj, dict):
        for key in _WRAPPER_KEYS:
            if isinstance(obj.get(key), dict) and obj[key] and all(isinstance(v, torch.Tensor) for v in obj[key].values()):
                obj = obj[key]
                break
    if not isinstance(obj, dict) or not obj or not all(isinstance(v, torch.Tensor) for v in obj.values()):
        keys = ", ".join(list(map(str, obj))[:6]) if isinstance(obj, dict) else type(obj).__name__
        raise ValueError(f"checkpoint {path} holds no state_dict (found: {keys}); expected torch.save(model."
                         f"state_dict()) or a dict with one under {'/'.join(_WRAPPER_KEYS[:2])}")
    return dict(obj)


def strip_prefixes(sd: dict[str, torch.Tensor], expected: set[str]) -> dict[str, torch.Tensor]:
    """Strip a leading component shared by all keys (``module.``, ``model.``, ``_orig_mod.``) while that makes more
    keys match ``expected``."""
    while sd:
        first = {k.split(".", 1)[0] for k in sd}
        if len(first) != 1 or not all("." in k for k in sd):
            return sd
        prefix = first.pop() + "."
        stripped = {k[len(prefix):]: v for k, v in sd.items()}
        if len(expected & set(stripped)) <= len(expected & set(sd)):
            return sd
        sd = stripped
    return sd


def _few(keys: list[str], n: int = 4) -> str:
    return ", ".join(keys[:n]) + (", ..." if len(keys) > n else "")


def load_checked(module: nn.Module, sd: dict[str, torch.Tensor], path: Path, arch: str, classes_from: str) -> None:
    """``module.load_state_dict(sd)`` after checking keys, the head's class count and shapes (one-line errors)."""
    expected = module.state_dict()
    sd = strip_prefixes(sd, set(expected))
    head = find_head(module)
    hk = f"{head}.weight" if head else None
    if hk and hk in sd and sd[hk].shape != expected[hk].shape and sd[hk].shape[1:] == expected[hk].shape[1:]:
        k_ckpt, k_want = sd[hk].shape[0], expected[hk].shape[0]
        hint = (f"set model.num_classes={k_ckpt} if the data's labels are ids of its classes" if k_ckpt > k_want
                else "the data has labels outside the checkpoint's classes")
        raise ClassCountMismatch(f"checkpoint {path} has a {k_ckpt}-class head ('{hk}') but {classes_from} {k_want} "
                         f"classes; {hint}")
    missing = [k for k in expected if k not in sd and not k.endswith("num_batches_tracked")]
    unexpected = [k for k in sd if k not in expected]
    if missing or unexpected:
        raise ValueError(f"checkpoint {path} does not fit arch '{arch}': {len(missing)} missing key(s)"
                         f"{' (' + _few(missing) + ')' if missing else ''}, {len(unexpected)} unexpected key(s)"
                         f"{' (' + _few(unexpected) + ')' if unexpected else ''}")
    bad = [k for k in sd if sd[k].shape != expected[k].shape]
    if bad:
        shapes = ", ".join(f"{k} {tuple(sd[k].shape)} vs {tuple(expected[k].shape)}" for k in bad[:3])
        raise ValueError(f"checkpoint {path} does not fit arch '{arch}': {len(bad)} shape mismatch(es) "
                         f"(checkpoint vs model: {shapes})")
    module.load_state_dict(sd, strict=False)  # only BatchNorm num_batches_tracked may be absent (old checkpoints)


# ---------------------------------------------------------------- building the architecture
def _first_conv_in(sd: dict[str, torch.Tensor]) -> int | None:
    for v in sd.values():
        if v.dim() == 4:
            return int(v.shape[1])
    return None


def _module_in_channels(module: nn.Module) -> int | None:
    for m in module.modules():
        if isinstance(m, nn.Conv2d):
            return int(m.in_channels)
    return None


def _candidates(arch: str, k: int, in_ch: int, sd: dict[str, torch.Tensor], cfg: dict) -> list[tuple[str, Any]]:
    """(label, factory) pairs that may build ``arch``, in the order to try them."""
    lib, _, name = arch.rpartition(":")
    lib = lib or "auto"
    if lib not in ("auto", "torchvision", "timm"):
        raise ValueError(f"model.arch='{arch}': library '{lib}' is not one of: torchvision, timm")
    kwargs = dict(cfg.get("arch_kwargs") or {})
    out: list[tuple[str, Any]] = []
    if name == "small_cnn" and lib == "auto":
        from uqcompress.models.small_cnn import SmallCNN

        def find(key: str) -> torch.Tensor | None:  # before prefix stripping (model., module.)
            return next((v for k_, v in sd.items() if k_ == key or k_.endswith("." + key)), None)

        w, h = find("features.0.weight"), find("classifier.1.weight")
        opts = {"width": int(w.shape[0]) if w is not None else 32, "hidden": int(h.shape[0]) if h is not None else 128}
        opts.update({k_: cfg[k_] for k_ in ("width", "hidden") if cfg.get(k_)})
        out.append(("small_cnn", lambda: SmallCNN(in_channels=in_ch, num_classes=k, **opts, **kwargs)))
        return out
    from uqcompress._compat import ensure_torchvision

    tv = ensure_torchvision()
    if lib in ("auto", "torchvision") and name in tv.models.list_models():
        out.append((f"torchvision:{name}", lambda: tv.models.get_model(name, weights=None, num_classes=k, **kwargs)))
    if lib in ("auto", "timm"):
        try:
            import timm
        except ImportError:
            timm = None
        if timm is not None and timm.is_model(name):
            out.append((f"timm:{name}", lambda: timm.create_model(name, pretrained=False, num_classes=k,
                                                                    in_chans=in_ch, **kwargs)))
    if not out:
        raise ValueError(f"model.arch='{arch}' is not small_cnn, a torchvision model name (e.g. resnet18) or a timm "
                         "model name (e.g. timm:resnet18)" + ("" if lib != "timm" or _has_timm() else
                                                              "; timm is not installed: pip install timm"))
    return out


def _has_timm() -> bool:
    import importlib.util

    return importlib.util.find_spec("timm") is not None


def _norm(cfg: dict, channels: int) -> tuple[list[float] | None, list[float] | None]:
    mean, std = cfg.get("mean"), cfg.get("std")
    if mean is None and std is None:
        return None, None
    if (mean is None) != (std is None):
        raise ValueError("model.mean and model.std go together: set both (or neither)")
    vals = []
    for what, v in (("mean", mean), ("std", std)):
        v = IMAGENET[what] if v == "imagenet" else v
        v = [float(v)] * channels if isinstance(v, (int, float)) else [float(t) for t in v]
        if len(v) == 1:
            v = v * channels
        if len(v) != channels:
            raise ValueError(f"model.{what} has {len(v)} values but the model takes {channels}-channel images")
        vals.append(v)
    if min(vals[1]) <= 0:
        raise ValueError(f"model.std={vals[1]} must be > 0")
    return vals[0], vals[1]


def _hash_path(path: Path) -> str:
    """Content hash of a file, or of every file in a folder (names + bytes): the cache key of the weights."""
    h = hashlib.sha256()
    files = sorted(p for p in path.rglob("*") if p.is_file()) if path.is_dir() else [path]
    for f in files:
        h.update(str(f.relative_to(path) if path.is_dir() else f.name).encode())
        hash_file(h, f)
    return h.hexdigest()[:16]


def build_state_dict_model(cfg: dict, data: DataBundle, path: Path) -> ModelBundle:
    """A torchvision / timm / small_cnn architecture with the user's state_dict, adapted to the data's channels."""
    require_modality("checkpoint", "image", data)
    arch = str(cfg["arch"])
    k = int(cfg.get("num_classes") or data.num_classes or 0)
    if k <= 0:
        raise ValueError("model=checkpoint: the data has no class count; set model.num_classes")
    classes_from = "model.num_classes is" if cfg.get("num_classes") else f"data set '{data.name}' has"
    sd = read_state_dict(path)
    in_ch = int(cfg.get("in_channels") or _first_conv_in(sd) or data.image_shape[0])
    errors: list[str] = []
    module = label = None
    for label, factory in _candidates(arch, k, in_ch, sd, cfg):
        m = factory()
        try:
            load_checked(m, sd, path, label, classes_from)
        except ClassCountMismatch:
            raise
        except ValueError as e:
            errors.append(str(e))
            continue
        module = m
        break
    if module is None:
        raise ValueError(errors[0] + (f" (also tried {len(errors) - 1} other librar{'y' if len(errors) == 2 else 'ies'})"
                                      if len(errors) > 1 else ""))
    module.eval()
    model_ch = _module_in_channels(module) or in_ch
    data_ch = data.image_shape[0]
    mean, std = _norm(cfg, model_ch)
    if model_ch != data_ch:
        if data_ch != 1 and model_ch != 1:
            raise ValueError(f"checkpoint {path} takes {model_ch}-channel images but data set '{data.name}' has "
                             f"{data_ch} channels")
        log.info("checkpoint takes %d-channel images; data has %d: channels are %s", model_ch, data_ch,
                 "repeated" if data_ch == 1 else "averaged")
    module, head = _wrap(module, mean, std, data_ch, model_ch)
    key = fingerprint("checkpoint", VERSION, label, _hash_path(path), k, in_ch, data_ch, mean, std,
                      cfg.get("arch_kwargs") or {})
    arch = {"resolved_arch": label, "in_channels": in_ch, "model_channels": model_ch, "mean": mean, "std": std}
    if label == "small_cnn":  # read off the checkpoint: a rebuild has no file to read them from
        inner = module.model if isinstance(module, Preprocess) else module
        arch.update(width=int(inner.features[0].out_channels), hidden=int(inner.classifier[1].out_features))
    return ModelBundle(module, "checkpoint", key, "image", k, head=head, arch=arch,
                       info={"arch": label, "checkpoint": str(path),
                             "params": sum(p.numel() for p in module.parameters())})


def _wrap(module: nn.Module, mean: list[float] | None, std: list[float] | None, data_ch: int,
          model_ch: int) -> tuple[nn.Module, str | None]:
    """(``module`` behind :class:`Preprocess` when inputs need normalising or another channel count, head name)."""
    head = find_head(module)
    if mean is None and model_ch == data_ch:
        return module, head
    return Preprocess(module, mean, std, data_ch, model_ch).eval(), (f"model.{head}" if head else None)


def state_dict_architecture(cfg: dict, num_classes: int, input_shape: tuple[int, ...]) -> ModelBundle:
    """The untrained structure of a state_dict checkpoint, from the facts its build recorded (no file needed)."""
    label = cfg.get("resolved_arch")
    if not label or not input_shape:
        raise ValueError("this predictor file lacks the checkpoint's resolved architecture or input shape")
    (_, factory), *_ = _candidates(label, int(num_classes), int(cfg["in_channels"]), {}, cfg)
    module, head = _wrap(factory().eval(), cfg.get("mean"), cfg.get("std"), int(input_shape[0]),
                         int(cfg["model_channels"]))
    return ModelBundle(module, "checkpoint", fingerprint("checkpoint-arch", VERSION, cfg), "image", int(num_classes),
                       head=head)


# ---------------------------------------------------------------- Hugging Face folder
def _check_label_names(id2label: dict, data: DataBundle, path: Path) -> None:
    """Refuse string labels whose sorted ids disagree with the model's ``id2label`` names (with the fix)."""
    mapping = data.info.get("label_mapping")
    names = {int(i): str(n) for i, n in (id2label or {}).items()}
    if not mapping or not names or all(n.upper() == f"LABEL_{i}" for i, n in names.items()):
        return
    by_name = {n: i for i, n in names.items()}
    if set(mapping) <= set(by_name) and any(by_name[n] != i for n, i in mapping.items()):
        order = [names[i] for i in sorted(names)]
        raise ValueError(f"model folder {path} labels classes {names} but the data maps {mapping}; "
                         f"set data.class_names=[{','.join(order)}] to use the model's order")


def build_hf_folder(cfg: dict, data: DataBundle, path: Path) -> ModelBundle:
    """A Hugging Face sequence classifier + tokenizer from a local folder (offline; no remote code unless set)."""
    require_modality("checkpoint", "text", data)
    if not (path / "config.json").is_file():
        raise ValueError(f"model.path '{path}' is a folder without config.json (not a Hugging Face model folder); "
                         "for a state_dict give the file and model.arch")
    from uqcompress._compat import ensure_torchvision

    ensure_torchvision()  # transformers imports torchvision when it is installed
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    trust = bool(cfg.get("trust_remote_code", False))
    try:
        module, info = AutoModelForSequenceClassification.from_pretrained(
            str(path), trust_remote_code=trust, local_files_only=True, output_loading_info=True)
        tokenizer = AutoTokenizer.from_pretrained(str(path), trust_remote_code=trust, local_files_only=True)
    except (OSError, ValueError, KeyError) as e:
        raise ValueError(f"cannot load Hugging Face folder {path} ({type(e).__name__}: "
                         f"{str(e).strip().splitlines()[0][:200]})") from None
    missing = sorted(info.get("missing_keys") or [])
    if missing:
        raise ValueError(f"model folder {path} lacks trained weights for {len(missing)} key(s) ({_few(missing)}); "
                         "it is not a trained sequence classifier")
    k = int(module.config.num_labels)
    if cfg.get("num_classes") and int(cfg["num_classes"]) != k:
        raise ValueError(f"model.num_classes={cfg['num_classes']} but the model folder {path} has {k} labels")
    if data.num_classes is not None and data.num_classes > k:
        raise ValueError(f"data set '{data.name}' has {data.num_classes} classes but the model folder {path} "
                         f"predicts {k}")
    _check_label_names(getattr(module.config, "id2label", None), data, path)
    module.eval()
    max_length = int(cfg.get("max_length") or 128)
    key = fingerprint("checkpoint_hf", VERSION, _hash_path(path), max_length)
    return ModelBundle(module, "checkpoint", key, "text", k,
                       prepare=TextPrepare(tokenizer, max_length, keys=tokenizer.model_input_names),
                       head=find_head(module), arch={"hf_folder": True, "max_length": max_length,
                                                     "trust_remote_code": trust},
                       arch_files=hf_files(module.config, tokenizer),
                       info={"arch": type(module).__name__, "checkpoint": str(path),
                             "params": sum(p.numel() for p in module.parameters())})


def checkpoint_architecture(cfg: dict, num_classes: int, input_shape: tuple[int, ...] | None,
                            files: dict[str, bytes] | None = None) -> ModelBundle:
    """What a saved predictor of ``model=checkpoint`` rebuilds: a state_dict's architecture, or a Hugging Face
    classifier from the config and tokenizer files the predictor file stores (the original folder is not needed)."""
    if not cfg.get("hf_folder"):
        return state_dict_architecture(cfg, num_classes, input_shape)
    module, prepare = hf_classifier_from_files("checkpoint", files or {}, num_classes, int(cfg["max_length"]),
                                               bool(cfg.get("trust_remote_code", False)))
    return ModelBundle(module, "checkpoint", fingerprint("checkpoint-hf-arch", VERSION, cfg), "text", int(num_classes),
                       prepare=prepare, head=find_head(module))


@MODELS.register("checkpoint", architecture=checkpoint_architecture,
                 options=("path", "arch", "num_classes", "in_channels", "arch_kwargs", "mean", "std", "width", "hidden",
                          "max_length", "trust_remote_code"))
def build_checkpoint(cfg: dict, data: DataBundle, ctx: BuildContext) -> ModelBundle:
    raw = cfg.get("path")
    if raw in (None, "", "???"):
        raise ValueError("model=checkpoint needs model.path=FILE (a state_dict, with model.arch=NAME) or "
                         "model.path=DIR (a Hugging Face model folder)")
    path = Path(str(raw)).expanduser()
    if not path.exists():
        raise FileNotFoundError(f"model.path '{path}' does not exist")
    if path.is_dir():
        return build_hf_folder(cfg, data, path)
    if not cfg.get("arch"):
        raise ValueError(f"model.path '{path}' is a state_dict file: set model.arch (small_cnn, a torchvision name "
                         "such as resnet18, or timm:NAME)")
    return build_state_dict_model(cfg, data, path)
