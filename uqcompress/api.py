"""The Python front door: evaluate any ``nn.Module`` and your own data, no Hydra and no registry entry needed.

The CLI (``python -m uqcompress``) and :func:`evaluate` share one pipeline (:func:`uqcompress.pipeline.evaluate_bundles`).

Example:
    >>> import torch, uqcompress
    >>> torch.manual_seed(0)  # doctest: +ELLIPSIS
    <...>
    >>> x = torch.randn(400, 8); y = (x[:, 0] > 0).long()
    >>> model = torch.nn.Sequential(torch.nn.Linear(8, 16), torch.nn.ReLU(), torch.nn.Linear(16, 2))
    >>> res = uqcompress.evaluate(model, (x[:200], y[:200]), (x[200:], y[200:]), quant="int8_dynamic",
    ...                           progress=False)  # doctest: +SKIP
    >>> sorted(res.metrics)[:2]  # doctest: +SKIP
    ['baseline.aurc', 'baseline.accuracy']
"""
from __future__ import annotations

import copy
import logging
import warnings
from dataclasses import dataclass
from typing import Any, Callable

import numpy as np
import pandas as pd
import torch
from torch import nn

from uqcompress.cache import fingerprint
from uqcompress.compress import CompressContext, compress
from uqcompress.data.base import DataBundle, Split
from uqcompress.models.base import ModelBundle, find_head, module_device
from uqcompress.pipeline import DEFAULTS, RunResult, _merge, evaluate_bundles
from uqcompress.runner import Runner

log = logging.getLogger(__name__)


@dataclass
class EvalResult:
    """What :func:`evaluate` returns.

    Attributes:
        metrics: the flat keys of ``results.json`` (``baseline.accuracy``, ``compressed.flips``, ...).
        predictions: one row per test / OOD sample (the columns of ``predictions.csv``).
        run: the full :class:`~uqcompress.pipeline.RunResult` (outputs, fitted scorers and selectors).
    """

    metrics: dict[str, Any]
    predictions: pd.DataFrame
    run: RunResult

    @property
    def predictor(self):
        """A deployable :class:`~uqcompress.SelectivePredictor` around the compressed model."""
        from uqcompress.predictor import SelectivePredictor

        comp = self.run.compressed
        if comp.bundle is None:
            raise ValueError("a run over stored outputs has no model to deploy; evaluate the model itself "
                             "(uqcompress.evaluate) to get a SelectivePredictor")
        return SelectivePredictor(comp.bundle, comp.scorer, comp.selector)

    def plot(self, out_dir: str | None = None):
        """Write this run's plots (PNG) into ``out_dir`` (default: a temp folder) and return their paths."""
        from uqcompress.report.plots import plot_run

        return plot_run(self.run, out_dir)


def to_split(data: Any, name: str, labeled: bool = True) -> Split:
    """A :class:`Split` from ``(x, y)`` (tensors, numpy arrays, or a list of texts and labels), a torch ``Dataset`` of
    (x, y) pairs, a ``DataLoader``, a Split, or unlabeled inputs (a tensor / array / list of texts)."""
    if isinstance(data, Split):
        return data
    if isinstance(data, list) and data and all(isinstance(t, str) for t in data):
        x, y = data, None  # unlabeled texts (e.g. an OOD set)
    elif isinstance(data, (tuple, list)) and len(data) == 2 and not isinstance(data[0], (int, float, str)):
        x, y = data
    elif isinstance(data, torch.utils.data.DataLoader):
        xs, ys = [], []
        for batch in data:
            bx, by = (batch[0], batch[1]) if isinstance(batch, (tuple, list)) else (batch, None)
            xs.append(bx)
            ys.append(by)
        x = torch.cat(xs) if isinstance(xs[0], torch.Tensor) else [s for b in xs for s in b]
        y = None if ys[0] is None else torch.cat([torch.as_tensor(b) for b in ys])
    elif isinstance(data, torch.utils.data.Dataset):
        items = [data[i] for i in range(len(data))]  # type: ignore[arg-type]
        if items and isinstance(items[0], (tuple, list)):
            x = [it[0] for it in items]
            y = torch.as_tensor([int(it[1]) for it in items])
        else:
            x, y = items, None
        x = torch.stack(x) if x and isinstance(x[0], torch.Tensor) else x
    elif isinstance(data, (torch.Tensor, np.ndarray)):
        x, y = data, None
    else:
        raise TypeError(f"{name}: expected (x, y) tensors, a Dataset, a DataLoader or a Split, got {type(data).__name__}")
    if isinstance(x, np.ndarray):  # numpy float64 -> float32, the dtype of torch modules
        x = torch.from_numpy(np.ascontiguousarray(x, dtype=np.float32 if x.dtype.kind == "f" else None))
    if isinstance(x, tuple):
        x = list(x)
    if isinstance(x, torch.Tensor) and x.dtype == torch.uint8:
        x = x.float() / 255.0
    if y is not None:
        y_arr = np.asarray(y)
        if y_arr.dtype.kind not in "iub" and not (y_arr.dtype.kind == "f" and np.all(y_arr == np.round(y_arr))):
            raise ValueError(f"{name}: labels must be integer class ids, got {y_arr.dtype} values such as "
                             f"{y_arr.ravel().tolist()[0]!r}; map them to ids first (e.g. sorted(set(labels)).index)")
        y = torch.as_tensor(y_arr.astype(np.int64))
    if len(x) == 0:
        raise ValueError(f"{name} is empty")
    if y is not None and len(y) != len(x):
        raise ValueError(f"{name}: {len(x)} inputs but {len(y)} labels")
    if labeled and y is None:
        raise ValueError(f"{name} needs labels: pass (x, y)")
    return Split(x, y)


def _modality(x: Any) -> str:
    if isinstance(x, torch.Tensor):
        return "image" if x.dim() == 4 else "tensor"
    if isinstance(x, list) and x and isinstance(x[0], str):
        return "text"
    return "tensor"


def bundle_from_module(model: nn.Module | ModelBundle, example: Split, prepare: Callable[[Any], Any] | None = None,
                       name: str | None = None, runner: Runner | None = None) -> ModelBundle:
    """Wrap a user's logits-returning module as a :class:`ModelBundle` (class count read off one forward pass of
    two examples, through ``runner``)."""
    if isinstance(model, ModelBundle):
        return model
    if not isinstance(model, nn.Module):
        raise TypeError(f"model must be a torch.nn.Module returning logits, got {type(model).__name__}")
    prep = prepare or _identity
    bundle = ModelBundle(model.eval(), name or type(model).__name__,
                         fingerprint("user_model", type(model).__name__, model.state_dict()), _modality(example.x), 0,
                         prepare=prep, head=find_head(model))
    try:
        out = (runner or Runner("cpu", progress=False)).logits(bundle, example.x[:2], split="probe")
    except (RuntimeError, TypeError, ValueError, IndexError) as e:  # the probe: one line, not the model's traceback
        if isinstance(e, ValueError) and "NaN/inf" in str(e):  # the runner's own one-line check
            raise
        raise ValueError(probe_error(model, example.x, e, prepared=prepare is not None)) from None
    if out.dim() != 2:
        raise ValueError(f"model returned shape {tuple(out.shape)}; expected logits of shape (batch, classes)")
    if out.shape[1] < 2:
        raise ValueError(f"model returns {out.shape[1]} logit per sample; uqcompress needs one logit per class "
                         f"(batch, K >= 2): for a binary classifier with one output, return torch.cat([-z, z], 1)")
    bundle.num_classes = int(out.shape[1])
    return bundle


def _identity(x: Any) -> Any:
    return x


#: layers whose first occurrence tells the input a model expects (what :func:`probe_error` reads)
_FIRST_LAYERS = (nn.Linear, nn.Conv1d, nn.Conv2d, nn.Conv3d, nn.Embedding)


def first_layer(model: nn.Module) -> nn.Module | None:
    """The first Linear / Conv / Embedding in registration order (usually the first one applied)."""
    return next((m for m in model.modules() if isinstance(m, _FIRST_LAYERS)), None)


def probe_error(model: nn.Module, x: Any, err: Exception, prepared: bool = False) -> str:
    """One line for a model that failed on 2 calibration inputs: expected vs actual width / channels / dtype read
    from the model's first Linear / Conv / Embedding, else the shape, dtype and the error's first line."""
    first = (str(err).strip().splitlines() or [type(err).__name__])[0]
    if not isinstance(x, torch.Tensor) or prepared:
        return f"model failed on 2 calibration inputs ({type(err).__name__}: {first})"
    shape, dt = tuple(x.shape), str(x.dtype).replace("torch.", "")
    layer = first_layer(model)
    got = f"calibration inputs have shape {shape} and dtype {dt}"
    if isinstance(layer, nn.Linear) and (x.dim() < 2 or x.shape[-1] != layer.in_features):
        return f"{got}: width {shape[-1] if x.dim() else '?'}, but the model's first layer Linear(in_features=" \
               f"{layer.in_features}) expects width {layer.in_features} in the last dimension"
    if isinstance(layer, (nn.Conv1d, nn.Conv2d, nn.Conv3d)):
        rank = {nn.Conv1d: 1, nn.Conv2d: 2, nn.Conv3d: 3}[type(layer)]
        want = "(N, " + ", ".join([str(layer.in_channels)] + ["H", "W", "D"][:rank]) + ")"
        if x.dim() != rank + 2 or x.shape[1] != layer.in_channels:
            return f"{got}, but the model's first layer {type(layer).__name__}(in_channels={layer.in_channels}) " \
                   f"expects {want}"
    if isinstance(layer, nn.Embedding) and (x.is_floating_point() or x.is_complex()):
        return f"{got}, but the model's first layer Embedding expects integer token ids"
    weight = getattr(layer, "weight", None)
    if isinstance(weight, torch.Tensor) and x.is_floating_point() and weight.dtype != x.dtype:
        return f"{got}, but the model's weights are {str(weight.dtype).replace('torch.', '')}; cast the inputs"
    return f"model failed on 2 calibration inputs of shape {shape}, dtype {dt} ({type(err).__name__}: {first})"


def _model_dtype(model: Any) -> torch.dtype | None:
    """The floating dtype of a plain module's weights (None for a ModelBundle or a module without float weights)."""
    if not isinstance(model, nn.Module):
        return None
    return next((t.dtype for t in [*model.parameters(), *model.buffers()] if t.is_floating_point()), None)


def conform_inputs(splits: dict[str, Split], dtype: torch.dtype | None) -> dict[str, Split]:
    """Cast floating tensor inputs to the model's weight dtype and check every split has the calibration split's
    rank and width (features of 2-D inputs, channels of images); spatial sizes may differ (fully convolutional
    models). One line naming both shapes otherwise.

    Casts: float16 / bfloat16 -> float32 is exact; float64 -> float32 rounds to float32's 24-bit precision (relative
    error <= 6e-8, as for numpy inputs); integer inputs (token ids) are never cast.
    """
    ref = splits["calibration"].x
    out = {}
    for name, s in splits.items():
        x = s.x
        if isinstance(x, torch.Tensor) and isinstance(ref, torch.Tensor) and x.dim() > 1 and \
                (x.dim() != ref.dim() or x.shape[1] != ref.shape[1]):
            what = "width" if ref.dim() == 2 else "channels"
            raise ValueError(f"{name} inputs have shape {tuple(x.shape)} but calibration inputs have "
                             f"{tuple(ref.shape)}: the same rank and {what} (dimension 1) are needed")
        if dtype is not None and isinstance(x, torch.Tensor) and x.is_floating_point() and x.dtype != dtype:
            exact = torch.finfo(x.dtype).bits < torch.finfo(dtype).bits and torch.finfo(x.dtype).max <= torch.finfo(dtype).max
            log.info("%s inputs cast %s -> %s (%s)", name, str(x.dtype).replace("torch.", ""),
                     str(dtype).replace("torch.", ""), "exact" if exact else "rounded")
            s = Split(x.to(dtype), s.y)
        out[name] = s
    return out


def _cfg(value: str | dict | None, default: dict) -> dict:
    if value is None:
        return dict(default)
    if isinstance(value, str):
        return {"name": value}
    if "name" not in value:
        raise ValueError(f"config {value} needs a 'name' key")
    return dict(value)


def evaluate(
    model: nn.Module | ModelBundle,
    calibration: Any,
    test: Any,
    ood: Any = None,
    quant: str | dict = "int8",
    uncertainty: str | dict = "msp",
    selector: str | dict = "coverage",
    *,
    fit: Any = None,
    prepare: Callable[[Any], Any] | None = None,
    compressed: nn.Module | None = None,
    **options: Any,
) -> EvalResult:
    """Evaluate ``model`` and its compressed copy with selective prediction.

    Args:
        model: an ``nn.Module`` returning logits (or a :class:`ModelBundle`).
        calibration, test: ``(x, y)`` tensors, a ``Dataset``/``DataLoader`` of (x, y), or a :class:`Split`.
            The calibration split calibrates int8 observers, temperature and the selector threshold.
        ood: optional out-of-distribution inputs (labels ignored).
        quant, uncertainty, selector: config names (``"int8"``) or dicts (``{"name": "coverage", "target": 0.8}``).
        fit: optional training-split data, needed only by feature-space scorers (mahalanobis, knn).
        prepare: maps a raw batch to model inputs (e.g. a tokenizer); default identity.
        compressed: your own compressed model instead of applying ``quant``.
        **options: pipeline settings (``device``: auto | cpu | cuda | cuda:N, default auto; ``seed``,
            ``batch_size``, ``progress``, ``latency``, ...). The models run on ``device`` (a copy of ``model`` when it
            sits elsewhere: your module is never moved); schemes that cannot run there run on the CPU.
    """
    unknown = set(options) - set(DEFAULTS)
    if unknown:
        raise TypeError(f"unknown option(s) {sorted(unknown)}; choose from: {', '.join(sorted(DEFAULTS))}")
    splits = {"calibration": to_split(calibration, "calibration"), "test": to_split(test, "test")}
    if fit is not None:
        splits["fit"] = to_split(fit, "fit")
    if ood is not None:
        splits["ood"] = to_split(ood, "ood", labeled=False)
    if prepare is None:  # raw tensors go straight into the model: its dtype, the calibration split's shape
        splits = conform_inputs(splits, _model_dtype(model))
    ood_split = splits.pop("ood", None)
    cal = splits["calibration"]
    cfg = _merge(DEFAULTS, {**options, "uncertainty": _cfg(uncertainty, DEFAULTS["uncertainty"]),
                            "selector": _cfg(selector, DEFAULTS["selector"])})
    from uqcompress.validate import validate_config, warn_small_calibration

    validate_config(cfg)  # options, ranges, scorer and selector, before the model is compressed
    warn_small_calibration(cfg["selector"], len(cal))
    runner = Runner(cfg["device"], int(cfg.get("batch_size") or 256), cfg["progress"])
    base = runner.place(bundle_from_module(_on(model, runner.device), cal, prepare, runner=runner))
    data = DataBundle("user_data", _modality(cal.x), base.num_classes, splits)
    if cfg.get("threads"):  # as in the CLI (pipeline.run_config)
        torch.set_num_threads(int(cfg["threads"]))
    if compressed is not None:
        comp = bundle_from_module(compressed, cal, prepare or base.prepare, name=f"{base.name}_compressed",
                                  runner=runner)
        comp.info["scheme"] = "user"
    else:
        qcfg = _cfg(quant, {"name": "none"})
        comp = compress(base, qcfg, cal.x, CompressContext(cfg["seed"], str(runner.device), cfg["progress"],
                                                           runner=runner))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", category=UserWarning)
        run = evaluate_bundles(base, comp, data, ood_split, cfg, runner)
    return EvalResult(run.metrics, run.predictions, run)


def _on(model: Any, device: torch.device) -> Any:
    """``model``, or a copy of it on ``device`` (the caller's module is never moved)."""
    if isinstance(model, nn.Module) and module_device(model) != device:
        return copy.deepcopy(model)
    return model


def evaluate_outputs(
    baseline: Any,
    compressed: Any,
    labels: Any,
    *,
    calibration: Any = None,
    split: Any = None,
    ood_baseline: Any = None,
    ood_compressed: Any = None,
    uncertainty: str | dict = "msp",
    selector: str | dict = "coverage",
    kind: str = "auto",
    splits: dict[str, float] | None = None,
    seed: int = 0,
) -> EvalResult:
    """Evaluate stored outputs of a baseline and a compressed model (made anywhere, at any size) with the same
    pipeline as :func:`evaluate`: scores, selection, every metric, flips and the KL distribution. No model, so no
    size or latency keys, and only scorers that work from outputs (msp, entropy, margin, energy, temperature).

    Args:
        baseline, compressed: (N, K) logits or probabilities of the two models on the same rows (numpy or torch).
        labels: (N,) class ids in [0, K).
        calibration: which rows calibrate the scorer and selector: a boolean mask or an index array (the other
            rows are the test split). Or ``split``: calibration | test per row. Neither: a seeded split by
            ``splits`` (default half and half), stratified by label.
        ood_baseline, ood_compressed: optional (M, K) outputs of both models on out-of-distribution inputs.
        uncertainty, selector: config names (``"msp"``) or dicts (``{"name": "coverage", "target": 0.8}``).
        kind: ``logits``, ``probs`` (rows >= 0 summing to 1, checked), or ``auto``: probs when every value of
            every array is in [0, 1], else logits.
        seed: seed of the split when neither ``calibration`` nor ``split`` is given.

    Example:
        >>> import numpy as np, uqcompress
        >>> rng = np.random.default_rng(0)
        >>> z = rng.normal(size=(400, 5)) * 3; y = z.argmax(1); y[:80] = rng.integers(0, 5, 80)
        >>> res = uqcompress.evaluate_outputs(z, z + rng.normal(size=z.shape) * 0.3, y)
        >>> 0 < res.metrics["compressed.flips"] < 0.2, res.metrics["n_test"] + res.metrics["n_calibration"]
        (True, 400)
    """
    from uqcompress.outputs.base import as_logits, from_arrays
    from uqcompress.pipeline import evaluate_stored

    if calibration is not None and split is not None:
        raise ValueError("pass calibration (a mask or indices) or split (a name per row), not both")
    z = {"baseline": baseline, "compressed": compressed}
    if (ood_baseline is None) != (ood_compressed is None):
        raise ValueError("pass both ood_baseline and ood_compressed (the two models' outputs on the same OOD rows)")
    if ood_baseline is not None:
        z.update({"ood_baseline": ood_baseline, "ood_compressed": ood_compressed})
    kinds = {"auto", "logits", "probs"}
    if kind not in kinds:
        raise ValueError(f"kind='{kind}' is not one of: {', '.join(sorted(kinds))}")
    arrays = {k: _as_2d(v, k) for k, v in z.items()}
    guessed = kind == "auto"
    if guessed:  # values all in [0, 1]: probabilities (checked, so a bad row is an error, not logits)
        kind = "probs" if all(_in_unit_interval(a) for a in arrays.values()) else "logits"
    try:
        logits = {k: as_logits(a, kind, f"{k} {kind}") for k, a in arrays.items()}
    except ValueError as e:
        hint = "; pass kind='logits' if these are logits" if guessed and kind == "probs" and "sums to" in str(e) else ""
        raise ValueError(f"{e}{hint}") from None
    n = logits["baseline"].shape[0]
    y = np.asarray(labels.detach().cpu().numpy() if isinstance(labels, torch.Tensor) else labels)
    if y.ndim != 1 or y.shape[0] != n:
        raise ValueError(f"labels has shape {tuple(y.shape)} but baseline has {n} rows")
    names = None
    if calibration is not None:
        mask = np.asarray(calibration.cpu().numpy() if isinstance(calibration, torch.Tensor) else calibration)
        if mask.dtype != bool:
            idx = mask.astype(np.int64)
            if idx.size and (idx.min() < -n or idx.max() >= n):
                raise ValueError(f"calibration holds row {int(idx.max() if idx.max() >= n else idx.min())}, outside "
                                 f"the {n} rows")
            mask = np.zeros(n, dtype=bool)
            mask[idx] = True
        elif mask.shape != (n,):
            raise ValueError(f"calibration mask has shape {mask.shape} but baseline has {n} rows")
        names = np.where(mask, "calibration", "test")
    elif split is not None:
        names = np.asarray(split).astype(str)
    b, c = logits["baseline"], logits["compressed"]
    if "ood_baseline" in logits:
        ob, oc = logits["ood_baseline"], logits["ood_compressed"]
        if ob.shape != oc.shape or ob.shape[1:] != b.shape[1:]:
            raise ValueError(f"ood_baseline {ob.shape} and ood_compressed {oc.shape} must have the same shape, with "
                             f"the {b.shape[1]} classes of baseline")
        m = ob.shape[0]
        if names is None:  # split the in-distribution rows here, so the OOD rows stay out of it
            from uqcompress.outputs.base import check_fractions, split_rows

            names = split_rows(_checked_labels(y, b.shape[1]), check_fractions(splits, "splits"), seed)
        b, c = np.concatenate([b, ob]), np.concatenate([c, oc])
        y = np.concatenate([y, np.full(m, -1, dtype=y.dtype if y.dtype.kind in "iu" else np.int64)])
        names = np.concatenate([np.asarray(names).astype(str), np.full(m, "ood")])
    rows = np.arange(n)  # predictions.csv: the row of each test sample in baseline (of each OOD one in ood_*)
    if "ood_baseline" in logits:
        rows = np.concatenate([rows, np.arange(logits["ood_baseline"].shape[0])])
    stored = from_arrays(b, c, y, split=names, fractions=splits, seed=seed, rows=pd.DataFrame({"row": rows}))
    stored.facts["outputs.source"] = "arrays"
    cfg = {"uncertainty": _cfg(uncertainty, DEFAULTS["uncertainty"]), "selector": _cfg(selector, DEFAULTS["selector"])}
    from uqcompress.validate import CalibrationWarning

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", category=UserWarning)
        warnings.simplefilter("default", category=CalibrationWarning)  # too few calibration rows: the caller's to see
        run = evaluate_stored(stored, cfg)
    return EvalResult(run.metrics, run.predictions, run)


def _as_2d(x: Any, name: str) -> np.ndarray:
    a = x.detach().cpu().float().numpy() if isinstance(x, torch.Tensor) and x.dtype in (torch.float16,
                                                                                       torch.bfloat16) else x
    a = np.asarray(a.detach().cpu().numpy() if isinstance(a, torch.Tensor) else a)
    if a.ndim != 2:
        raise ValueError(f"{name} must be 2-D (N, K) logits or probabilities; got shape {tuple(a.shape)}")
    return a


def _in_unit_interval(a: np.ndarray) -> bool:
    return bool(a.size and np.isfinite(a).all() and a.min() >= 0 and a.max() <= 1)


def _checked_labels(y: np.ndarray, k: int) -> np.ndarray:
    from uqcompress.metrics import _validate as V

    return V.labels(y, "labels", y.shape[0], k, like="baseline")
