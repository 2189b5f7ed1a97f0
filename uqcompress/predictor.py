"""A deployable abstaining classifier: a (compressed) model + temperature + scorer + threshold, saved as one file.

``predict(x) -> (labels, confidence, accepted)``; the label is -1 where the predictor abstains. ``save(path)`` writes
one ``torch.save`` file of plain tensors and a JSON config; ``SelectivePredictor.load(path, device=)`` reads it with
``torch.load(weights_only=True)`` (no pickled code) and refuses, in one line, files it did not write or cannot read.
``torch.load`` does not check the zip's CRCs, so a flipped byte in a weight would load as a silently different model:
the file carries ``digest``, the sha256 of its config and every tensor's bytes (:func:`payload_digest`), computed at
save and checked at load; the selector's threshold must be a number (NaN would answer nothing).
Every forward pass goes through a :class:`~uqcompress.runner.Runner` on the predictor's device (``.to(device)``).

How a model comes back without its training data: the file stores the registry model name, its config and the facts
its build recorded (``ModelBundle.arch``; small non-weight files such as a tokenizer in ``arch_files``), the class
count and input shape; the model's registry entry rebuilds the untrained structure
(:meth:`~uqcompress.models.ModelEntry.rebuild_architecture`), the scheme's entry rebuilds the compressed structure
without data (:meth:`~uqcompress.compress.Scheme.rebuild`: for ``quant=int8`` the architecture is FX-prepared and
converted again without calibration, in the mode the run resolved), then the saved state_dict overwrites every number.
Why not TorchScript / torch.export: ``torch.jit`` is deprecated, both lose the submodule structure that feature
scorers and MC-dropout hook into, and neither loads through ``torch.load(weights_only=True)``.

Example:
    >>> import torch, tempfile, os
    >>> from uqcompress.models import MODELS
    >>> from uqcompress.uncertainty import build_scorer
    >>> from uqcompress.selection import build_selector
    >>> from uqcompress.predictor import SelectivePredictor
    >>> b = MODELS.get("small_cnn").rebuild_architecture({}, 10, (1, 28, 28))
    >>> sp = SelectivePredictor(b, build_scorer({"name": "msp"}), build_selector({"name": "threshold", "value": 0.2}),
    ...                         spec={"model": {"name": "small_cnn"}, "input_shape": [1, 28, 28]})
    >>> x = torch.rand(4, 1, 28, 28)
    >>> path = sp.save(os.path.join(tempfile.mkdtemp(), "p.pt"))
    >>> all(torch.equal(a, b) for a, b in zip(sp.predict(x), SelectivePredictor.load(path).predict(x)))
    True
"""
from __future__ import annotations

import copy
import hashlib
import json
import math
import logging
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from uqcompress.cache import atomic_torch_save, fingerprint
from uqcompress.models.base import ModelBundle, module_device
from uqcompress.runner import Runner, device_name, resolve_device
from uqcompress.selection import build_selector
from uqcompress.selection.base import Selector
from uqcompress.uncertainty import build_scorer
from uqcompress.uncertainty.base import Outputs, Scorer
from uqcompress.uncertainty.mc import MCOptions

log = logging.getLogger(__name__)

FORMAT = "uqcompress.SelectivePredictor"
VERSION = 3
READS = (1, 2, 3)  # version 1: no arch facts / files (models whose run config alone rebuilds them); 3: a digest
#: the label of an abstention, as a 0-dim tensor: ``torch.where`` wraps a Python -1 into a new tensor on every call
_ABSTAIN = torch.tensor(-1)
#: the payload entries the digest covers (all but the format marker, the version and the digest itself)
DIGESTED = ("config", "state_dict", "scorer_buffers", "arch_files", "fallback_state_dict")


class SelectivePredictor(nn.Module):
    """(Compressed) model + scorer (with its temperature) + selector, as one ``nn.Module``.

    Args:
        bundle: the model as the pipeline sees it (module, prepare, head, and how to rebuild it: ``arch``,
            ``arch_files``, ``quant``).
        scorer: a fitted scorer (temperature, feature statistics, ...).
        selector: a fitted selector (threshold).
        spec: ``{"model": {"name", ...config}, "input_shape", "quant", "num_classes", "modality"}``; the model config
            is merged with ``bundle.arch``; ``quant`` defaults to ``bundle.quant``.
        mc: MC-dropout settings when the scorer or selector needs passes (default: the scorer's, else MCOptions()).
        batch_size: rows per forward pass in ``predict``.
        fallback: the baseline model, for a cascade (``deploy.fallback=baseline``): ``predict`` answers with the
            compressed model where the selector accepts and with the baseline elsewhere, instead of abstaining;
            the baseline runs only on the deferred inputs.
    """

    def __init__(self, bundle: ModelBundle, scorer: Scorer, selector: Selector, spec: dict | None = None,
                 mc: MCOptions | None = None, batch_size: int = 256, fallback: ModelBundle | None = None) -> None:
        super().__init__()
        self.model = bundle.module.eval()
        self.bundle = bundle
        self.fallback = fallback
        self.fallback_model = fallback.module.eval() if fallback is not None else None
        self.scorer = scorer
        self.selector = selector
        spec = copy.deepcopy(spec or {})
        quant = bundle.quant if bundle.quant.get("name", "none") != "none" else spec.get("quant", bundle.quant)
        self.spec = {"num_classes": bundle.num_classes, "modality": bundle.modality, **spec, "quant": dict(quant)}
        if "model" in self.spec:
            self.spec["model"] = {**dict(self.spec["model"]), **bundle.arch}
        self.needs = frozenset(scorer.needs) | frozenset(selector.needs)
        self.mc = mc or getattr(scorer, "mc", None) or MCOptions()
        self.batch_size = int(batch_size)
        self.runner = self._runner_on(module_device(self.model))

    def _runner_on(self, device: str | torch.device) -> Runner:
        """The runner of every call on ``device``: no progress bars, and the scheme's own path on every call (CPU
        int4 keeps its weights quantized between and during calls: no once-per-pass dequantization)."""
        return Runner(device, self.batch_size, progress=False, dequantize_per_pass=False)

    # ---- inference ------------------------------------------------------------------------------------------
    def _inputs(self, x: Any) -> Any:
        """``x`` as the model takes it: image tensors cast to float32 ([0, 1]) and checked against the input shape."""
        if isinstance(x, np.ndarray):
            x = torch.from_numpy(x)
        tensor = isinstance(x, torch.Tensor)
        if (x.shape[0] if tensor and x.dim() else len(x)) == 0:  # Tensor.__len__ is a Python call: a hot path
            raise ValueError("SelectivePredictor.predict got an empty batch")
        if self.spec.get("modality") == "image" and not tensor:
            shape = self.spec.get("input_shape")
            what = f"a list of {type(x[0]).__name__}" if isinstance(x, (list, tuple)) else type(x).__name__
            raise ValueError(f"this SelectivePredictor holds an image model: it takes a tensor or array of shape "
                             f"(N, {', '.join(map(str, shape)) if shape else 'C, H, W'}); got {what}")
        if tensor:
            if x.dtype == torch.uint8 and self.spec.get("modality") == "image":
                x = x.float() / 255.0
            elif x.is_floating_point() and x.dtype != torch.float32:
                x = x.float()
            shape = self.spec.get("input_shape")
            if shape and x.shape[1:] != tuple(shape):
                raise ValueError(f"SelectivePredictor takes inputs of shape (N, {', '.join(map(str, shape))}); "
                                 f"got {tuple(x.shape)}")
        return x

    def outputs(self, x: Any) -> Outputs:
        """Logits (and features / MC passes when the scorer or selector needs them) for a raw batch ``x``."""
        return self._outputs(self._inputs(x))

    def _outputs(self, x: Any) -> Outputs:
        if "features" in self.needs:
            logits, feats = self.runner.logits_and_features(self.bundle, x, split="predict")
            out = Outputs(logits, features=feats)
        else:
            out = Outputs(self.runner.logits(self.bundle, x, split="predict"))
        if "mc" in self.needs:
            out.mc_probs = self.runner.mc_probs(self.bundle, x, self.mc, split="predict")
        return out

    def predict(self, x: Any, return_source: bool = False) -> tuple[torch.Tensor, ...]:
        """(labels int64, confidence float64 higher = more confident, accepted bool).

        Where the selector does not accept, the label is -1 (abstain); in a cascade (``fallback`` set) it is the
        baseline's answer instead. ``return_source=True`` adds who answered each input: 0 = the (compressed) model,
        1 = the baseline (cascade), -1 = nobody (abstained).
        """
        x = self._inputs(x)
        out = self._outputs(x) if self.needs else Outputs(self.runner.logits(self.bundle, x, split="predict"))
        probs = self.scorer.probs(out)
        conf, labels = self.scorer.confidence_and_labels(out, probs)
        accepted = self.selector.accept(conf, out)
        if self.fallback is None:
            labels = torch.where(accepted, labels, _ABSTAIN)
        else:
            deferred = (~accepted).nonzero().squeeze(1)
            if len(deferred):  # the baseline answers only what the compressed model defers
                rows = x[deferred] if isinstance(x, torch.Tensor) else [x[i] for i in deferred.tolist()]
                labels[deferred] = self.runner.logits(self.fallback, rows, split="deferred").argmax(-1)
        if not return_source:
            return labels, conf, accepted
        source = torch.where(accepted, 0, 1 if self.fallback is not None else -1)
        return labels, conf, accepted, source

    def forward(self, x: Any) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        return self.predict(x)

    # ---- devices --------------------------------------------------------------------------------------------
    @property
    def device(self) -> str:
        """Where the model really sits (read from its tensors)."""
        return device_name(self.model)

    def to(self, *args: Any, **kwargs: Any) -> "SelectivePredictor":
        """``nn.Module.to``; a device the compressed scheme cannot run on keeps the model on the CPU (one log line,
        as in a run: see :func:`uqcompress.compress.target_device`)."""
        device, dtype, _, _ = torch._C._nn._parse_to(*args, **kwargs)
        if dtype is not None:
            raise ValueError("SelectivePredictor.to takes a device only: the model's dtype is part of its scheme")
        if device is not None:
            from uqcompress.compress import SCHEMES, target_device

            quant = self.spec.get("quant") or {"name": "none"}
            device = resolve_device(device)
            target = target_device(SCHEMES.get(quant["name"]), quant, device)
            self.model.to(target)
            self.runner = self._runner_on(target)
            if self.fallback_model is not None:  # the uncompressed baseline runs anywhere
                self.fallback_model.to(device)
        return self

    # ---- persistence ----------------------------------------------------------------------------------------
    def config(self) -> dict:
        """Everything but tensors, JSON-able: what ``load`` needs to rebuild this predictor."""
        return {**self.spec, "head": self.bundle.head, "scorer": self.scorer.state(),
                "selector": self.selector.state(), "mc": self.mc.key(), "batch_size": self.batch_size,
                **({"fallback": {"head": self.fallback.head}} if self.fallback is not None else {})}

    def save(self, path: str | Path) -> Path:
        """Write one file (atomic): ``{"format", "version", "config" (JSON str), "state_dict", "scorer_buffers",
        "arch_files"}``, every tensor on the CPU."""
        if not (self.spec.get("model") or {}).get("name"):
            raise ValueError("SelectivePredictor.save needs spec['model']['name'] (the registry model name) so that "
                             "load can rebuild the architecture")
        path = Path(path)
        payload = {
            "format": FORMAT,
            "version": VERSION,
            "config": json.dumps(self.config(), sort_keys=True),
            "state_dict": _cpu_state(self.model),
            "scorer_buffers": {k: v.detach().cpu() for k, v in self.scorer.buffers().items()},
            "arch_files": {k: torch.from_numpy(np.frombuffer(v, dtype=np.uint8).copy())
                           for k, v in self.bundle.arch_files.items()},
        }
        if self.fallback is not None:  # a cascade: the baseline's weights (same architecture, no scheme)
            payload["fallback_state_dict"] = _cpu_state(self.fallback_model)
        _selector_from_state(self.selector.state())  # a threshold load would refuse (NaN) is not written
        payload["digest"] = payload_digest(payload)
        atomic_torch_save(payload, path)
        return path

    @classmethod
    def load(cls, path: str | Path, device: str | torch.device | None = None) -> "SelectivePredictor":
        """Rebuild a predictor written by :meth:`save` (on the CPU, then ``.to(device)`` when given); needs no
        training data and no cache. A file that is not one, or whose payload is malformed, is a one-line error."""
        path = Path(path)
        if not path.is_file():
            raise FileNotFoundError(f"SelectivePredictor file not found: {path}")
        try:
            obj = _load_plain(path)
        except Exception as e:
            raise ValueError(f"{path} is not a SelectivePredictor file (it does not load as plain tensors: "
                             f"{type(e).__name__})") from None
        if not isinstance(obj, dict) or obj.get("format") != FORMAT:
            raise ValueError(f"{path} is not a SelectivePredictor file (no '{FORMAT}' marker); "
                             "write one with SelectivePredictor.save or deploy.export=PATH")
        if obj.get("version") not in READS:
            raise ValueError(f"{path} is a SelectivePredictor file of version {obj.get('version')}; "
                             f"this uqcompress reads versions {', '.join(map(str, READS))}")
        if obj["version"] >= 3 and obj.get("digest") != payload_digest(obj):
            raise ValueError(f"{path} is corrupt: its content does not match the sha256 digest written with it "
                             "(a changed byte in a weight or in the config); write it again with deploy.export=PATH")
        try:
            pred = cls._from_payload(obj)
        except (KeyError, TypeError, ValueError, RuntimeError, AttributeError) as e:
            why = str(e.args[0]) if isinstance(e, KeyError) and e.args else str(e)
            first = (why.strip().splitlines() or [type(e).__name__])[0][:200]
            raise ValueError(f"{path} is a malformed SelectivePredictor file ({type(e).__name__}: {first}); "
                             "write it again with deploy.export=PATH") from None
        return pred.to(device) if device is not None else pred

    @classmethod
    def _from_payload(cls, obj: dict) -> "SelectivePredictor":
        from uqcompress.compress import SCHEMES
        from uqcompress.models import MODELS

        cfg = json.loads(obj["config"])
        if not isinstance(cfg, dict):
            raise TypeError(f"config is a {type(cfg).__name__}, not a mapping")
        state, buffers = obj["state_dict"], obj.get("scorer_buffers") or {}
        if not isinstance(state, dict):
            raise TypeError(f"state_dict is a {type(state).__name__}, not a mapping of tensors")
        files = {k: bytes(v.numpy().tobytes()) for k, v in (obj.get("arch_files") or {}).items()}
        model_cfg = dict(cfg["model"])
        arch = MODELS.get(model_cfg["name"]).rebuild_architecture(model_cfg, cfg["num_classes"],
                                                                   cfg.get("input_shape"), files)
        quant = dict(cfg.get("quant") or {"name": "none"})
        scheme = SCHEMES.get(quant.get("name", "none"))
        module = scheme.rebuild(arch, quant, state, _example_inputs(arch, cfg))
        facts = {"scheme": scheme.name} if scheme.name != "none" else {}
        if scheme.autocast_for(quant):
            facts["autocast"] = scheme.autocast_for(quant)
        bundle = arch.with_module(module, fingerprint("predictor", obj["config"]), quant=quant, **facts)
        bundle.head = cfg.get("head", bundle.head)
        bundle.arch_files = files
        fallback = None
        if cfg.get("fallback") is not None:  # a cascade: the baseline on the same architecture, no scheme
            base = MODELS.get(model_cfg["name"]).rebuild_architecture(model_cfg, cfg["num_classes"],
                                                                      cfg.get("input_shape"), files)
            base_module = SCHEMES.get("none").rebuild(base, {"name": "none"}, obj["fallback_state_dict"], None)
            fallback = base.with_module(base_module, fingerprint("predictor-fallback", obj["config"]))
            fallback.head = cfg["fallback"].get("head", fallback.head)
        scorer = _scorer_from_state(cfg["scorer"], buffers)
        selector = _selector_from_state(cfg["selector"])
        spec = {k: cfg[k] for k in ("model", "num_classes", "input_shape", "modality") if k in cfg}
        return cls(bundle, scorer, selector, spec=spec, mc=MCOptions.from_options(cfg.get("mc")),
                   batch_size=int(cfg.get("batch_size", 256)), fallback=fallback)


def _cpu_state(module: nn.Module) -> dict:
    """``module.state_dict()`` with every tensor on the CPU; keeps its ``_metadata`` (quantized modules load by
    state-dict version)."""
    state = module.state_dict()
    for k, v in state.items():
        if isinstance(v, torch.Tensor):
            state[k] = v.detach().cpu()
    return state


def _load_plain(path: Path) -> Any:
    """``torch.load(weights_only=True)``; a file holding torchao weights (quant=int8/int4_weight_only) needs torchao's
    tensor classes, which torchao registers as safe globals when imported: import it then and read again. torch's
    own deprecation messages about the storages of quantized tensors are filtered (:mod:`uqcompress._quiet`)."""
    from uqcompress._quiet import known_chatter

    try:
        with known_chatter():
            return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:
        if "torchao" not in str(e):
            raise
    from uqcompress.compress.weight_only import quiet_torchao

    with quiet_torchao():
        return torch.load(path, map_location="cpu", weights_only=True)


def _example_inputs(arch: ModelBundle, spec: dict) -> Any:
    if arch.modality == "image":
        shape = spec.get("input_shape")
        if not shape:
            raise ValueError("this predictor file has no input_shape; cannot rebuild an image model")
        return arch.prepare(torch.zeros(2, *shape))
    return arch.prepare(["a b c", "d e f"])


def _scorer_from_state(state: dict, buffers: dict) -> Scorer:
    scorer = build_scorer({"name": state["name"], **state.get("config", {}), "temperature": float(state["temperature"])})
    return scorer.load_buffers(buffers)


def _selector_from_state(state: dict) -> Selector:
    opts = {k: v for k, v in state.items() if k not in ("name", "threshold")}
    selector = build_selector({"name": state["name"], **opts})
    threshold = state["threshold"]
    rule_based = math.isnan(selector.threshold)  # a selector without a threshold (mc_interval) starts at NaN
    if isinstance(threshold, bool) or not isinstance(threshold, (int, float)) or (math.isnan(threshold)
                                                                                  and not rule_based):
        raise ValueError(f"selector={state['name']} threshold is {threshold!r}, not a number (it would answer "
                         "nothing)")
    selector.threshold = float(threshold)
    return selector


def payload_digest(payload: dict) -> str:
    """sha256 over the :data:`DIGESTED` entries of a predictor file: the config string and, key by key, every
    tensor's dtype, shape and bytes (quantized tensors: their integers, scales and zero points; tensor subclasses such
    as torchao's: their inner tensors), so it is the same before ``torch.save`` and after ``torch.load``.

    >>> a = payload_digest({"config": "{}", "state_dict": {"w": torch.ones(2)}})
    >>> a == payload_digest({"config": "{}", "state_dict": {"w": torch.tensor([1.0, 1.5])}})
    False
    """
    h = hashlib.sha256()
    for key in DIGESTED:
        if key in payload:
            h.update(key.encode())
            _digest_into(h, payload[key])
    return h.hexdigest()


def _digest_into(h: Any, value: Any) -> None:
    if isinstance(value, dict):
        for k in sorted(value, key=str):
            h.update(b"k" + str(k).encode())
            _digest_into(h, value[k])
    elif isinstance(value, (list, tuple)):
        h.update(f"[{len(value)}".encode())
        for v in value:
            _digest_into(h, v)
    elif isinstance(value, torch.Tensor):
        h.update(f"t{value.dtype}{tuple(value.shape)}".encode())
        if type(value) is not torch.Tensor and hasattr(value, "__tensor_flatten__"):  # torchao weights
            names, _ = value.__tensor_flatten__()
            for name in names:
                _digest_into(h, getattr(value, name))
        elif value.is_quantized:
            if value.qscheme() in (torch.per_tensor_affine, torch.per_tensor_symmetric):
                h.update(f"q{value.q_scale()!r}{value.q_zero_point()}".encode())
            else:
                _digest_into(h, [value.q_per_channel_scales(), value.q_per_channel_zero_points()])
                h.update(f"a{value.q_per_channel_axis()}".encode())
            _digest_into(h, value.int_repr())
        else:
            h.update(value.detach().cpu().contiguous().reshape(-1).view(torch.uint8).numpy().tobytes())
    else:
        h.update(repr(value).encode())


def deploy_problems(deploy: dict) -> list[str]:
    """What is wrong with the values of ``deploy.model`` / ``deploy.fallback`` (one line each; none: [])."""
    which, fallback = deploy.get("model", "compressed"), deploy.get("fallback")
    problems = []
    if which not in ("compressed", "baseline"):
        problems.append(f"deploy.model='{which}' is not one of: compressed, baseline")
    if fallback not in (None, "baseline"):
        problems.append(f"deploy.fallback='{fallback}' is not one of: null, baseline")
    elif fallback and which != "compressed":
        problems.append("deploy.fallback=baseline defers the compressed model's abstentions to the baseline: "
                        "use it with deploy.model=compressed")
    return problems


def check_exportable(cfg: dict) -> None:
    """Refuse, before any work, a ``deploy.export`` that :meth:`SelectivePredictor.load` could not rebuild."""
    from uqcompress.compress import SCHEMES
    from uqcompress.models import MODELS

    deploy = dict(cfg.get("deploy") or {})
    if not deploy.get("export"):
        return
    problems = deploy_problems(deploy)
    if problems:
        raise ValueError(problems[0])
    which = deploy.get("model", "compressed")
    model = MODELS.get(cfg["model"]["name"])
    if not model.deployable:
        names = [n for n in MODELS.names() if MODELS.get(n).deployable]
        raise ValueError(f"deploy.export cannot save model={model.name} (no architecture entry to rebuild it); "
                         f"deployable models: {', '.join(names)}")
    quant = dict(cfg["quant"]) if which == "compressed" else {"name": "none"}
    if not SCHEMES.get(quant["name"]).deployable(quant):
        names = [n for n in SCHEMES.names() if SCHEMES.get(n).structure is not None]
        raise ValueError(f"deploy.export cannot save quant={quant['name']} models (their weights cannot be rebuilt "
                         f"from a plain-tensor file); deployable schemes: {', '.join(names)}")


def export_run(result: Any, cfg: dict, data: Any, path: str | Path, which: str = "compressed",
               fallback: str | None = None) -> Path:
    """Write the SelectivePredictor of one model of a pipeline run (``deploy.export=PATH``); with
    ``fallback="baseline"`` a cascade that defers the compressed model's abstentions to the baseline."""
    check_exportable({**cfg, "deploy": {"export": str(path), "model": which, "fallback": fallback}})
    ev = result.compressed if which == "compressed" else result.baseline
    spec = {"model": dict(cfg["model"]), "num_classes": ev.bundle.num_classes,
            "input_shape": list(data.image_shape) if data.image_shape else None, "modality": data.modality}
    mc = MCOptions.from_options(dict(cfg.get("uncertainty") or {}))
    pred = SelectivePredictor(ev.bundle, ev.scorer, ev.selector, spec=spec, mc=mc,
                              batch_size=int(cfg.get("batch_size", 256)),
                              fallback=result.baseline.bundle if fallback else None)
    out = pred.save(path)
    log.info("deploy: wrote SelectivePredictor (%s, %s%s) to %s", ev.bundle.label, ev.scorer.name,
             ", deferring to the baseline" if fallback else "", out)
    return out
