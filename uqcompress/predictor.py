"""A deployable abstaining classifier: a (compressed) model + temperature + scorer + threshold, saved as one file.

``predict(x) -> (labels, confidence, accepted)``; the label is -1 where the predictor abstains. ``save(path)`` writes
one ``torch.save`` file of plain tensors and a JSON config; ``SelectivePredictor.load(path)`` reads it with
``torch.load(weights_only=True)`` (no pickled code) and refuses files it did not write.

How a model comes back without its training data: the file stores the registry model name + its config + the class
count and input shape, and ``models.ARCHITECTURES`` rebuilds the untrained module. A compressed model is rebuilt by
its scheme's *rebuilder* (:data:`REBUILDERS`): for ``quant=int8`` the untrained module is FX-prepared and converted
again without calibration (the structure only depends on the graph and the qconfig), then the saved quantized
state_dict (int8 weights, scales, zero points and the activation qparams, all buffers) overwrites every number.
Why not TorchScript / torch.export: ``torch.jit`` is deprecated, both lose the submodule structure that feature
scorers and MC-dropout hook into, and neither loads through ``torch.load(weights_only=True)``.

Example:
    >>> import torch, tempfile, os
    >>> from uqcompress.models import ARCHITECTURES
    >>> from uqcompress.uncertainty import build_scorer
    >>> from uqcompress.selection import build_selector
    >>> from uqcompress.predictor import SelectivePredictor
    >>> b = ARCHITECTURES.get("small_cnn")({}, 10, (1, 28, 28))
    >>> sp = SelectivePredictor(b, build_scorer({"name": "msp"}), build_selector({"name": "threshold", "value": 0.2}),
    ...                         spec={"model": {"name": "small_cnn"}, "input_shape": [1, 28, 28]})
    >>> x = torch.rand(4, 1, 28, 28)
    >>> path = sp.save(os.path.join(tempfile.mkdtemp(), "p.pt"))
    >>> all(torch.equal(a, b) for a, b in zip(sp.predict(x), SelectivePredictor.load(path).predict(x)))
    True
"""
from __future__ import annotations

import copy
import json
import logging
import warnings
from pathlib import Path
from typing import Any, Callable

import torch
from torch import nn

from uqcompress.cache import atomic_torch_save, fingerprint
from uqcompress.models.base import ModelBundle, call_module
from uqcompress.registry import Registry
from uqcompress.selection import build_selector
from uqcompress.selection.base import Selector
from uqcompress.uncertainty import build_scorer
from uqcompress.uncertainty.base import Outputs, Scorer
from uqcompress.uncertainty.mc import MCOptions, capture_head, mc_probs, to_device, _device, _dequant

log = logging.getLogger(__name__)

FORMAT = "uqcompress.SelectivePredictor"
VERSION = 1

#: ``fn(architecture: ModelBundle, quant_cfg: dict, state_dict, example_inputs) -> nn.Module`` keyed by scheme name:
#: rebuilds a compressed module's structure from the untrained architecture, then loads ``state_dict`` into it.
REBUILDERS = Registry("deployable quant scheme")


@REBUILDERS.register("none")
def _rebuild_float(arch: ModelBundle, quant: dict, state: dict, example: Any) -> nn.Module:
    module = arch.module.eval()
    module.load_state_dict(state)
    return module


@REBUILDERS.register("int8")
def _rebuild_int8(arch: ModelBundle, quant: dict, state: dict, example: Any) -> nn.Module:
    from uqcompress.compress.int8_static import DEFAULTS, pick_mode, prepared_int8, skipped_layers

    backend = quant.get("backend", DEFAULTS["backend"])
    torch.backends.quantized.engine = backend
    args = (example,) if not isinstance(example, dict) else tuple(example.values())
    mode, _ = pick_mode(arch.module, backend, args, quant.get("mode", DEFAULTS["mode"]))  # as the run resolved it
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # "must run observer before calculate_qparams": structure only, numbers below
        prepared, finish = prepared_int8(arch.module, backend, args, mode, skipped_layers(arch.module, quant.get("skip")))
        module = finish(prepared)
    module.load_state_dict(state)
    return module.eval()


def _rebuild_by_scheme(arch: ModelBundle, quant: dict, state: dict, example: Any) -> nn.Module:
    """Schemes whose module structure needs no calibration data (casts, dynamic int8, pruning): apply the scheme to
    the untrained architecture for the structure, then load the saved numbers into it."""
    from uqcompress.compress import CompressContext, compress

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        module = compress(arch, quant, None, CompressContext(progress=False)).module
    module.load_state_dict(state)
    return module.eval()


for _name in ("fp16", "bf16", "int8_dynamic", "prune_global_l1", "prune_2of4"):
    REBUILDERS.register(_name, _rebuild_by_scheme)


def _example_inputs(arch: ModelBundle, spec: dict) -> Any:
    if arch.modality == "image":
        shape = spec.get("input_shape")
        if not shape:
            raise ValueError("this predictor file has no input_shape; cannot rebuild an image model")
        return arch.prepare(torch.zeros(2, *shape))
    return arch.prepare(["a b c", "d e f"])


class SelectivePredictor(nn.Module):
    """(Compressed) model + scorer (with its temperature) + selector, as one ``nn.Module``.

    Args:
        bundle: the model as the pipeline sees it (module, prepare, head).
        scorer: a fitted scorer (temperature, feature statistics, ...).
        selector: a fitted selector (threshold).
        spec: how to rebuild the model on load: ``{"model": {"name", ...config}, "quant": {"name", ...},
            "num_classes", "input_shape", "modality"}`` (num_classes / modality default to the bundle's).
        mc: MC-dropout settings when the scorer or selector needs passes (default: the scorer's, else MCOptions()).
        batch_size: rows per forward pass in ``predict``.
    """

    def __init__(self, bundle: ModelBundle, scorer: Scorer, selector: Selector, spec: dict | None = None,
                 mc: MCOptions | None = None, batch_size: int = 256) -> None:
        super().__init__()
        self.model = bundle.module.eval()
        self.bundle = bundle
        self.scorer = scorer
        self.selector = selector
        self.spec = {"num_classes": bundle.num_classes, "modality": bundle.modality, "quant": {"name": "none"},
                     **copy.deepcopy(spec or {})}
        self.needs = frozenset(scorer.needs) | frozenset(selector.needs)
        self.mc = mc or getattr(scorer, "mc", None) or MCOptions()
        self.batch_size = int(batch_size)

    # ---- inference ------------------------------------------------------------------------------------------
    def outputs(self, x: Any) -> Outputs:
        """Logits (and features / MC passes when the scorer or selector needs them) for a raw batch ``x``."""
        module = self.model.eval()
        dev = _device(module)
        logits, feats = [], []
        store: dict = {}
        want_features = "features" in self.needs
        with torch.inference_mode():
            for i in range(0, len(x), self.batch_size):
                inputs = to_device(self.bundle.prepare(x[i : i + self.batch_size]), dev)
                if want_features:
                    with capture_head(self.bundle, store):
                        logits.append(call_module(module, inputs).float())
                    feats.append(_dequant(store["in"]).float())
                else:
                    logits.append(call_module(module, inputs).float())
        out = Outputs(torch.cat(logits).cpu() if len(logits) > 1 else logits[0].cpu())
        if want_features:
            out.features = torch.cat(feats).cpu()
        if "mc" in self.needs:
            out.mc_probs = mc_probs(self.bundle, x, self.mc, self.batch_size, progress=False)
        return out

    def predict(self, x: Any) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """(labels int64 with -1 where abstaining, confidence float64 higher = more confident, accepted bool)."""
        if len(x) == 0:
            raise ValueError("SelectivePredictor.predict got an empty batch")
        out = self.outputs(x)
        probs = self.scorer.probs(out)
        conf = self.scorer.confidence(out, probs)
        accepted = self.selector.accept(conf, out)
        labels = torch.where(accepted, probs.argmax(-1), torch.full_like(accepted, -1, dtype=torch.long))
        return labels, conf, accepted

    def forward(self, x: Any) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        return self.predict(x)

    # ---- persistence ----------------------------------------------------------------------------------------
    def config(self) -> dict:
        """Everything but tensors, JSON-able: what ``load`` needs to rebuild this predictor."""
        return {**self.spec, "head": self.bundle.head, "scorer": self.scorer.state(),
                "selector": self.selector.state(), "mc": self.mc.key(), "batch_size": self.batch_size}

    def save(self, path: str | Path) -> Path:
        """Write one file (atomic): ``{"format", "version", "config" (JSON str), "state_dict", "scorer_buffers"}``."""
        if not (self.spec.get("model") or {}).get("name"):
            raise ValueError("SelectivePredictor.save needs spec['model']['name'] (the registry model name) so that "
                             "load can rebuild the architecture")
        path = Path(path)
        payload = {
            "format": FORMAT,
            "version": VERSION,
            "config": json.dumps(self.config(), sort_keys=True),
            "state_dict": self.model.state_dict(),
            "scorer_buffers": {k: v.detach().cpu() for k, v in self.scorer.buffers().items()},
        }
        atomic_torch_save(payload, path)
        return path

    @classmethod
    def load(cls, path: str | Path) -> "SelectivePredictor":
        """Rebuild a predictor written by :meth:`save`; needs no training data and no cache."""
        path = Path(path)
        if not path.is_file():
            raise FileNotFoundError(f"SelectivePredictor file not found: {path}")
        try:
            obj = torch.load(path, map_location="cpu", weights_only=True)
        except Exception as e:
            raise ValueError(f"{path} is not a SelectivePredictor file (it does not load as plain tensors: "
                             f"{type(e).__name__})") from None
        if not isinstance(obj, dict) or obj.get("format") != FORMAT:
            raise ValueError(f"{path} is not a SelectivePredictor file (no '{FORMAT}' marker); "
                             "write one with SelectivePredictor.save or deploy.export=PATH")
        if obj.get("version") != VERSION:
            raise ValueError(f"{path} is a SelectivePredictor file of version {obj.get('version')}; "
                             f"this uqcompress reads version {VERSION}")
        cfg = json.loads(obj["config"])
        from uqcompress.models import ARCHITECTURES

        model_cfg = dict(cfg["model"])
        shape = cfg.get("input_shape")
        arch = ARCHITECTURES.get(model_cfg["name"])(model_cfg, int(cfg["num_classes"]),
                                                    tuple(shape) if shape else None)
        quant = dict(cfg.get("quant") or {"name": "none"})
        rebuild: Callable = REBUILDERS.get(quant.get("name", "none"))
        module = rebuild(arch, quant, obj["state_dict"], _example_inputs(arch, cfg))
        bundle = arch.with_module(module, fingerprint("predictor", obj["config"]),
                                  **({"scheme": quant["name"]} if quant.get("name", "none") != "none" else {}))
        bundle.head = cfg.get("head", bundle.head)
        scorer = _scorer_from_state(cfg["scorer"], obj.get("scorer_buffers") or {})
        selector = _selector_from_state(cfg["selector"])
        spec = {k: cfg[k] for k in ("model", "quant", "num_classes", "input_shape", "modality") if k in cfg}
        return cls(bundle, scorer, selector, spec=spec, mc=MCOptions.from_options(cfg.get("mc")),
                   batch_size=int(cfg.get("batch_size", 256)))


def _scorer_from_state(state: dict, buffers: dict) -> Scorer:
    scorer = build_scorer({"name": state["name"], **state.get("config", {}), "temperature": float(state["temperature"])})
    return scorer.load_buffers(buffers)


def _selector_from_state(state: dict) -> Selector:
    opts = {k: v for k, v in state.items() if k not in ("name", "threshold")}
    selector = build_selector({"name": state["name"], **opts})
    selector.threshold = float(state["threshold"])
    return selector


def export_run(result: Any, cfg: dict, data: Any, path: str | Path, which: str = "compressed") -> Path:
    """Write the SelectivePredictor of one model of a pipeline run (``deploy.export=PATH``)."""
    if which not in ("compressed", "baseline"):
        raise ValueError(f"deploy.model='{which}' is not one of: compressed, baseline")
    ev = result.compressed if which == "compressed" else result.baseline
    quant = dict(cfg["quant"]) if which == "compressed" else {"name": "none"}
    if quant.get("name", "none") not in REBUILDERS:
        raise ValueError(f"deploy.export cannot save quant='{quant['name']}' models yet; deployable schemes: "
                         f"{', '.join(REBUILDERS.names())}")
    spec = {"model": dict(cfg["model"]), "quant": quant, "num_classes": ev.bundle.num_classes,
            "input_shape": list(data.image_shape) if data.image_shape else None, "modality": data.modality}
    mc = MCOptions.from_options(dict(cfg.get("uncertainty") or {}))
    pred = SelectivePredictor(ev.bundle, ev.scorer, ev.selector, spec=spec, mc=mc,
                              batch_size=int(cfg.get("batch_size", 256)))
    out = pred.save(path)
    log.info("deploy: wrote SelectivePredictor (%s, %s) to %s", ev.bundle.label, ev.scorer.name, out)
    return out
