"""One pipeline for every front door (CLI and Python API): baseline + compressed model -> outputs -> scores ->
selection -> metrics -> predictions.

Example (Python, no Hydra):
    >>> from uqcompress.pipeline import run_config
    >>> res = run_config({"data": {"name": "mnist"}, "limit": 200, "fit_limit": 200,
    ...                   "model": {"name": "small_cnn", "epochs": 1}, "quant": {"name": "none"},
    ...                   "ood": {"name": "none"}, "progress": False})  # doctest: +SKIP
    >>> 0 <= res.metrics["baseline.accuracy"] <= 1  # doctest: +SKIP
    True
"""
from __future__ import annotations

import logging
import warnings
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np
import torch

from uqcompress import metrics as M
from uqcompress.compress import CompressContext, compress
from uqcompress.data import DataBundle, Split, conform_images, load_dataset
from uqcompress.measure import state_dict_bytes, weight_bits, weight_sparsity
from uqcompress.models import BuildContext, build_model
from uqcompress.models.base import ModelBundle
from uqcompress.outputs.base import StoredOutputs
from uqcompress.progress import set_progress
from uqcompress.report.provenance import config_facts
from uqcompress.runner import Runner, device_name, resolve_device, torch_threads
from uqcompress.selection import build_selector
from uqcompress.uncertainty import build_scorer
from uqcompress.uncertainty.base import Outputs
from uqcompress.validate import validate_config

if TYPE_CHECKING:  # pandas is imported where a frame is built: it is not on a job's path to its first inference
    import pandas as pd

log = logging.getLogger(__name__)

DEFAULTS: dict[str, Any] = {
    "seed": 0,
    "device": "auto",
    "progress": True,
    "threads": None,
    "batch_size": 256,
    "limit": None,
    "fit_limit": None,
    "uncertainty": {"name": "msp"},
    "selector": {"name": "coverage", "target": 0.9},
    "ood": {"name": "none"},
    "latency": {"batch_size": 32, "repeats": 10, "warmup": 2, "threads": 1},
    "deploy": {"export": None, "model": "compressed", "fallback": None},
    "bootstrap": 1000,
}


@dataclass
class ModelEval:
    """Everything computed for one model (baseline or compressed); ``bundle`` is None for stored outputs."""

    bundle: ModelBundle | None
    outputs: dict[str, Outputs]          # calibration / test / ood
    probs: dict[str, torch.Tensor]
    confidence: dict[str, torch.Tensor]
    accept: dict[str, torch.Tensor]
    scorer: Any
    selector: Any
    metrics: dict[str, Any] = field(default_factory=dict)


@dataclass
class RunResult:
    metrics: dict[str, Any]
    predictions: pd.DataFrame
    baseline: ModelEval
    compressed: ModelEval
    inputs: dict[str, Split] = field(default_factory=dict)  # the test / ood inputs (thumbnails in the reports)


def _merge(defaults: dict, cfg: dict) -> dict:
    out = dict(defaults)
    if isinstance(cfg.get("name"), str) and cfg.get("name") != out.get("name"):
        return dict(cfg)  # another choice of a config group (selector=risk): the default's options do not apply
    for k, v in cfg.items():
        out[k] = _merge(out[k], v) if isinstance(v, dict) and isinstance(out.get(k), dict) else v
    return out


def load_data(cfg: dict) -> tuple[DataBundle, Split | None]:
    """The ID data bundle and the OOD split (conformed to the ID input shape), honouring ``limit``.

    Refuses an ID data set with fewer than 2 classes (one line naming it) and warns
    (:class:`~uqcompress.validate.CalibrationWarning`) when the calibration split is too small for the selector's
    target (:func:`~uqcompress.validate.calibration_warnings`).
    """
    from uqcompress.data.base import check_classes
    from uqcompress.validate import warn_small_calibration

    data = load_dataset(dict(cfg["data"]), cfg["seed"])
    limit, fit_limit = cfg.get("limit"), cfg.get("fit_limit")
    # limit caps the evaluated splits only: the fit split (what a model is trained and cached on, what feature
    # scorers fit) keeps all its samples unless fit_limit caps it, so limit=100 never retrains a model on 100 images
    caps = {k: fit_limit if k == "fit" else limit for k in data.splits}
    data.splits = {k: s.head(int(caps[k])) if caps[k] is not None else s for k, s in data.splits.items()}
    try:  # validated >= 1 up front; 0 is not "no limit"
        check_classes(data)
    except ValueError as e:
        if limit is None and fit_limit is None:
            raise
        if limit == fit_limit:
            said = [f"limit={limit} keeps at most {limit} samples per split"]
        else:
            said = [f"limit={limit} keeps at most {limit} samples per evaluated split"] if limit is not None else []
            said += [f"fit_limit={fit_limit} keeps at most {fit_limit} fit samples"] if fit_limit is not None else []
        raise ValueError(f"{e} ({'; '.join(said)})") from None
    warn_small_calibration(cfg.get("selector") or DEFAULTS["selector"], len(data["calibration"]))
    ood = None
    ood_cfg = dict(cfg.get("ood") or {"name": "none"})
    if ood_cfg.get("name", "none") != "none":
        ood_bundle = load_dataset(ood_cfg, cfg["seed"])
        if ood_bundle.modality != data.modality:
            raise ValueError(f"ood set '{ood_bundle.name}' is {ood_bundle.modality} but data set '{data.name}' is "
                             f"{data.modality}")
        ood = ood_bundle["test"]
        if ood_bundle.info.get("source"):
            data.info["ood_source"] = ood_bundle.info["source"]
        n = ood_cfg.get("limit") if ood_cfg.get("limit") is not None else limit
        if n is not None:
            g = np.random.default_rng(cfg["seed"]).permutation(len(ood))[: int(n)]
            ood = ood.subset(np.sort(g))
        # covariate shift (same classes, labelled, e.g. ood=cifar10_c) keeps its labels: accuracy on it is defined
        shift = ood_bundle.info.get("shift") == "covariate" and ood_bundle.class_names == data.class_names
        labels = ood.y if shift else None
        if data.modality == "image":
            ood = Split(conform_images(ood.x, data.image_shape), labels, ood.sources)
        else:
            ood = Split(ood.x, labels, ood.sources)
    return data, ood


def build_scoring(cfg: dict) -> tuple[Any, Any]:
    """A fresh (scorer, selector) from the ``uncertainty`` and ``selector`` groups (scorers learn per model)."""
    return build_scorer(dict(cfg["uncertainty"])), build_selector(dict(cfg["selector"]))


def evaluate_model(bundle: ModelBundle, data: DataBundle, ood: Split | None, cfg: dict, runner: Runner,
                   reference: dict[str, torch.Tensor] | None = None) -> ModelEval:
    """Outputs (collected through ``runner``), then :func:`score_outputs`, plus what the model itself is (size,
    bits, sparsity, device). ``reference``: see :func:`score_outputs`."""
    scorer, selector = build_scoring(cfg)
    needs = frozenset(scorer.needs) | frozenset(selector.needs)
    ucfg = dict(cfg["uncertainty"])
    splits = {"calibration": data["calibration"], "test": data["test"]}
    if ood is not None:
        splits["ood"] = ood
    outputs = {k: runner.outputs(bundle, k, s, needs, ucfg) for k, s in splits.items()}
    fit_out = runner.outputs(bundle, "fit", data["fit"], {"features"}) if "features" in needs else None
    ev = score_outputs(outputs, scorer, selector, fit_out, reference)
    ev.bundle = bundle
    m = ev.metrics
    m["model_size_bytes"] = state_dict_bytes(bundle.module)
    m["bits"] = bundle.info.get("bits", weight_bits(bundle.module))  # measured for models no scheme touched
    m["sparsity"] = bundle.info.get("sparsity", weight_sparsity(bundle.module))
    m["device"] = device_name(bundle.module)  # where it really ran, read from its tensors
    return ev


def score_outputs(outputs: dict[str, Outputs], scorer: Any, selector: Any, fit: Outputs | None = None,
                  reference: dict[str, torch.Tensor] | None = None) -> ModelEval:
    """Confidence, acceptance and per-model metrics from one model's outputs per split (``calibration``, ``test``,
    optional ``ood``): the one place they are computed, whether uqcompress ran the model or read its stored outputs.

    ``reference``: the baseline's predicted labels per split, for selectors that need them (``"reference"`` in
    ``selector.needs``); without it a model is its own reference (the baseline itself)."""
    cal_out = outputs["calibration"]
    if "reference" in scorer.needs:  # a scorer that learns where answers differ (flip_aware): calibration only
        cal_out.reference = reference["calibration"] if reference is not None else cal_out.logits.argmax(-1)
    if hasattr(scorer, "for_selector"):
        scorer.for_selector(selector)
    scorer.fit(cal_out, fit)
    probs = {k: scorer.probs(o) for k, o in outputs.items()}
    conf = {k: scorer.score(o) for k, o in outputs.items()}
    if hasattr(scorer, "calibration_score"):  # out-of-fold scores of a scorer fit on this very split
        conf["calibration"] = scorer.calibration_score(cal_out)
    if "reference" in selector.needs:  # agreement selectors: the baseline's answers play the role of the labels
        for k, o in outputs.items():
            o.reference = reference[k] if reference is not None else probs[k].argmax(-1)
    cal_correct = probs["calibration"].argmax(-1) == cal_out.labels
    truth = getattr(cal_out, selector.truth)
    rows = getattr(scorer, "selection_rows", None)  # calibration rows the scorer was not fit on (flip_aware split)
    sel_out = cal_out if rows is None else subset_outputs(cal_out, rows)
    sel_agree = probs["calibration"].argmax(-1) == truth
    selector.fit(conf["calibration"] if rows is None else conf["calibration"][rows],
                 sel_agree if rows is None else sel_agree[rows], sel_out)
    accept = {k: selector.accept(conf[k], o) for k, o in outputs.items()}

    y = outputs["test"].labels
    p = probs["test"]
    correct = p.argmax(-1) == y
    m: dict[str, Any] = {"accuracy": M.accuracy(p, y)}
    m.update(M.calibration(p, y))
    m.update(M.selective(conf["test"], correct, accept["test"]))
    m.update(M.aurc(conf["test"], correct))
    cal = M.selective(conf["calibration"], cal_correct, accept["calibration"])
    m["calibration_coverage"] = cal["coverage"]
    m["calibration_selective_risk"] = cal["selective_risk"]
    m["threshold"] = selector.threshold
    m.update(selector.facts())
    if hasattr(scorer, "facts"):
        m.update(scorer.facts())
    if outputs["test"].reference is not None:  # did the agreement target hold out of sample?
        agree = p.argmax(-1) == outputs["test"].reference
        m["selective_disagreement"] = M.selective(conf["test"], agree, accept["test"])["selective_risk"]
    if getattr(scorer, "temperature", 1.0) != 1.0 or getattr(scorer, "fit_temperature", False):
        m["temperature"] = scorer.temperature
    if "ood" in outputs:
        o = M.ood(conf["test"], conf["ood"])
        m.update({f"ood_{k}": v for k, v in o.items()})
        m["ood_coverage"] = float(accept["ood"].double().mean())  # share of OOD inputs the selector still answers
        shift_y = outputs["ood"].labels
        if shift_y is not None:  # covariate shift: the selector's behaviour on labelled shifted inputs
            shift_correct = probs["ood"].argmax(-1) == shift_y
            m["shift_accuracy"] = M.accuracy(probs["ood"], shift_y)
            sel = M.selective(conf["ood"], shift_correct, accept["ood"])
            m.update({f"shift_{k}": sel[k] for k in ("coverage", "selective_risk", "saved_rate")})
    return ModelEval(None, outputs, probs, conf, accept, scorer, selector, m)


def subset_outputs(out: Outputs, rows: torch.Tensor) -> Outputs:
    """The rows ``rows`` of every per-sample field of ``out``."""
    def pick(t: torch.Tensor | None, dim: int = 0) -> torch.Tensor | None:
        return None if t is None else t.index_select(dim, rows.to(t.device))

    return Outputs(pick(out.logits), pick(out.labels), pick(out.mc_probs, 1), pick(out.features), pick(out.reference))


def is_fact(value: Any) -> bool:
    """A scalar or a list of scalars: what ``results.json`` holds.

    >>> is_fact(0.5), is_fact(["encoder.layer.0"]), is_fact({"a": 1})
    (True, True, False)
    """
    scalar = (str, int, float, bool, type(None))
    return isinstance(value, scalar) or (isinstance(value, (list, tuple)) and all(isinstance(v, scalar) for v in value))


def scheme_facts(baseline: ModelBundle, compressed: ModelBundle) -> dict[str, Any]:
    """Every scalar or list fact the compression scheme added to (or changed in) the compressed bundle's ``info``."""
    return {k: (list(v) if isinstance(v, tuple) else v) for k, v in compressed.info.items()
            if is_fact(v) and (k not in baseline.info or baseline.info[k] != v)}


def compare(base: ModelEval, comp: ModelEval) -> dict[str, Any]:
    """What changed from baseline to compressed on the test split (flips, KL and its distribution
    (:func:`uqcompress.metrics.kl_distribution`: ``kl_sem``, ``kl_median``, ``kl_p90`` ... ``kl_max``), JS, flip
    catch rate: of the correctness flips, and ``disagreement_catch_rate``: of all changed answers, the share
    abstained on)."""
    y = base.outputs["test"].labels
    out = dict(M.flips(base.probs["test"], comp.probs["test"], y))
    dist = M.kl_distribution(base.outputs["test"].logits, comp.outputs["test"].logits)
    out["kl"] = dist.pop("kl_mean")  # = M.kl_from_logits
    out.update(dist)
    out["js"] = M.js_from_logits(base.outputs["test"].logits, comp.outputs["test"].logits)
    out["accuracy_delta"] = comp.metrics["accuracy"] - base.metrics["accuracy"]
    cb = base.probs["test"].argmax(-1) == y
    cc = comp.probs["test"].argmax(-1) == y
    flipped = cb != cc
    if int(flipped.sum()) == 0:
        out["flip_catch_rate"] = float("nan")
    else:  # of the C→I / I→C flips, the share the compressed model's selector abstains on
        out["flip_catch_rate"] = float((~comp.accept["test"][flipped]).double().mean())
    differ = base.probs["test"].argmax(-1) != comp.probs["test"].argmax(-1)  # any changed answer (all_flips)
    out["disagreement_catch_rate"] = (float((~comp.accept["test"][differ]).double().mean()) if bool(differ.any())
                                      else float("nan"))
    return out


def cascade(base: ModelEval, comp: ModelEval) -> dict[str, Any]:
    """The compressed model answering where its selector accepts and deferring to the baseline elsewhere (test
    split): accuracy, deferral rate, agreement and flips vs the baseline, and cost relative to the baseline alone.

    The baseline's answer is its plain forward pass (argmax of its logits), as in a deployed cascade
    (``deploy.fallback=baseline``); the compressed model's is its scorer's, as in ``SelectivePredictor.predict``."""
    base_answer = base.outputs["test"].logits.double().softmax(-1)
    out = M.cascade(base_answer, comp.probs["test"], base.outputs["test"].labels, comp.accept["test"])
    t_c, t_b = comp.metrics.get("latency_ms_per_sample"), base.metrics.get("latency_ms_per_sample")
    if t_c is not None and t_b is not None:  # stored outputs have no latencies: no cost (absent, not faked)
        ok = all(isinstance(t, float) and np.isfinite(t) and t > 0 for t in (t_c, t_b))
        out["cost"] = M.cascade_cost(out["deferral_rate"], t_c, t_b) if ok else float("nan")
    return out


def predictions_frame(base: ModelEval, comp: ModelEval, inputs: dict[str, Split] | None = None,
                      class_names: list[str] | None = None) -> pd.DataFrame:
    """One row per test and OOD sample: ``id`` (split, index in split, content hash), ``index``, ``label``, each
    model's prediction, max probability, confidence and acceptance; with ``inputs``, ``input`` (text, truncated, or the
    image file path; absent for plain tensors); with ``class_names``, ``label_name`` and ``*_pred_name``."""
    import pandas as pd

    from uqcompress.report.examples import input_texts, sample_ids

    inputs = inputs or {}
    names = np.asarray(list(class_names or []) + [""], dtype=object)  # index -1 (unlabelled OOD) -> ""
    frames = []
    for split in [s for s in ("test", "ood") if s in base.outputs]:
        y = base.outputs[split].labels
        n = len(base.outputs[split])
        data = inputs.get(split)
        cols: dict[str, Any] = {"split": split}
        if data is not None:
            cols["id"] = sample_ids(split, data.x)
        cols.update({
            "index": np.arange(n),
            "label": (y.numpy() if y is not None else np.full(n, -1)),
            "baseline_pred": base.probs[split].argmax(-1).numpy(),
            "compressed_pred": comp.probs[split].argmax(-1).numpy(),
            "baseline_pmax": base.probs[split].max(-1).values.double().numpy(),
            "compressed_pmax": comp.probs[split].max(-1).values.double().numpy(),
            "baseline_confidence": base.confidence[split].double().numpy(),
            "compressed_confidence": comp.confidence[split].double().numpy(),
            "baseline_accepted": base.accept[split].numpy(),
            "compressed_accepted": comp.accept[split].numpy(),
        })
        if class_names:
            for col in ("label", "baseline_pred", "compressed_pred"):
                ids = np.asarray(cols[col])
                cols[f"{col}_name"] = names[np.where((ids >= 0) & (ids < len(names) - 1), ids, -1)]
        texts = input_texts(data.x, data.sources) if data is not None else None
        if texts is not None:
            cols["input"] = texts
        frames.append(pd.DataFrame(cols))
    return pd.concat(frames, ignore_index=True)


def run_intervals(base: ModelEval, comp: ModelEval, n_boot: int, seed: int) -> dict[str, Any]:
    """Bootstrap intervals of the headline numbers on the test (and OOD) samples, models and threshold fixed."""
    from uqcompress.report.intervals import headline_intervals

    ood = ({w: (m.confidence["test"], m.confidence["ood"]) for w, m in (("baseline", base), ("compressed", comp))}
           if "ood" in base.confidence else None)
    return headline_intervals(base.outputs["test"].labels, base.probs["test"], comp.probs["test"],
                              comp.confidence["test"], comp.accept["test"], ood, n_boot=n_boot, seed=seed)


def run_metrics(base: ModelEval, comp: ModelEval, cfg: dict) -> dict[str, Any]:
    """The flat keys of one run: ``baseline.*``, ``compressed.*`` (its own metrics and :func:`compare`),
    ``cascade.*`` (:func:`cascade`; its cost needs both models' latencies, so stored outputs have none), the
    split sizes, and the bootstrap intervals of the headline numbers (``bootstrap`` resamples, 0 = none)."""
    metrics: dict[str, Any] = {f"baseline.{k}": v for k, v in base.metrics.items()}
    metrics.update({f"compressed.{k}": v for k, v in comp.metrics.items()})
    metrics.update({f"compressed.{k}": v for k, v in compare(base, comp).items()})
    metrics.update({f"cascade.{k}": v for k, v in cascade(base, comp).items()})
    metrics["n_test"] = len(base.outputs["test"])
    metrics["n_calibration"] = len(base.outputs["calibration"])
    metrics["n_ood"] = len(base.outputs["ood"]) if "ood" in base.outputs else 0
    if cfg.get("bootstrap"):  # 95% intervals of the headline numbers (uqcompress.report.intervals)
        metrics.update(run_intervals(base, comp, n_boot=int(cfg["bootstrap"]), seed=int(cfg["seed"])))
    return metrics


def per_group(data: DataBundle, base: ModelEval, comp: ModelEval, cfg: dict) -> dict[str, Any]:
    """``<kind>.<group>.*`` keys (:mod:`uqcompress.metrics.groups`) on the test split when the data's items carry a
    group (``data.info["group_by"]``: ``subject`` for MMLU, ``relation`` for knowledge probes, ``task``), else none."""
    from uqcompress.metrics.groups import group_metrics

    kind = data.info.get("group_by")
    if not kind:
        return {}
    groups = [it[kind] for it in data["test"].x]
    out = group_metrics(base.outputs["test"].logits, comp.outputs["test"].logits, base.outputs["test"].labels,
                        groups, kind, n_boot=min(int(cfg.get("bootstrap") or 0), 1000), seed=int(cfg["seed"]))
    out["group_by"] = kind
    return out


def evaluate_bundles(baseline: ModelBundle, compressed: ModelBundle, data: DataBundle, ood: Split | None,
                     cfg: dict, runner: Runner | None = None) -> RunResult:
    """Score, select and measure a baseline and its compressed copy on the same splits, each model where it sits;
    latency of both in the same interleaved rounds (``compressed.speedup`` = baseline time / compressed time)."""
    cfg = _merge(DEFAULTS, cfg)
    runner = runner or Runner("cpu", cfg.get("batch_size") or 256, cfg["progress"])
    base = evaluate_model(baseline, data, ood, cfg, runner)
    comp = evaluate_model(compressed, data, ood, cfg, runner,
                          reference={k: p.argmax(-1) for k, p in base.probs.items()})
    timing = runner.latency({"baseline": baseline, "compressed": compressed}, data["test"].x, **dict(cfg["latency"]))
    base.metrics.update(timing["baseline"])
    comp.metrics.update(timing["compressed"])
    metrics = run_metrics(base, comp, cfg)
    metrics["compressed.speedup"] = (timing["baseline"]["latency_ms_per_sample"]
                                     / timing["compressed"]["latency_ms_per_sample"])
    for k, v in scheme_facts(baseline, compressed).items():
        metrics.setdefault(f"compressed.{k}", v)
    metrics.update(per_group(data, base, comp, cfg))
    inputs = {"test": data["test"], **({"ood": ood} if ood is not None else {})}
    return RunResult(metrics, predictions_frame(base, comp, inputs, data.class_names), base, comp, inputs)


#: below this many logits per model, stored outputs are scored on one torch thread: the row-wise work on (N, K)
#: arrays is tiny and OpenMP's hand-off costs more than it (10,000 x 5: 0.05 s of CPU on 1 thread, 0.30 s on 2,
#: and 5x the wall time on a busy machine; scripts/bench_outputs.py). A fixed rule on the input's size.
SMALL_OUTPUTS = 1 << 22


def evaluate_stored(stored: StoredOutputs, cfg: dict) -> RunResult:
    """Score, select and measure stored outputs of a baseline and a compressed model (``outputs=lm_eval | arrays``,
    :func:`uqcompress.evaluate_outputs`) with the same functions as models uqcompress runs itself, plus the
    whole-run keys over all questions (``all.*``, ``task.<name>.*``: :func:`uqcompress.outputs.scopes.scope_metrics`).
    No model: no size, latency or device keys."""
    from uqcompress.outputs import check_needs
    from uqcompress.outputs.scopes import scope_metrics
    from uqcompress.validate import warn_small_calibration

    cfg = _merge(DEFAULTS, cfg)
    check_needs(cfg, stored.facts.get("outputs.source", "arrays"))
    if "calibration" in stored.baseline:  # as for models (load_data): a selector fit on too few questions warns
        warn_small_calibration(cfg["selector"], len(stored.baseline["calibration"].logits))
    scorers = [build_scoring(cfg) for _ in range(2)]  # fresh ones per model: scorers and selectors learn
    size = sum(o.logits.numel() for o in stored.baseline.values())
    with torch_threads(1 if size < SMALL_OUTPUTS else torch.get_num_threads()):
        base = score_outputs(stored.baseline, *scorers[0])
        comp = score_outputs(stored.compressed, *scorers[1], reference={k: p.argmax(-1) for k, p in base.probs.items()})
        metrics = run_metrics(base, comp, cfg)
    metrics.update(scope_metrics(stored.views))
    metrics.update(stored.facts)
    predictions = predictions_frame(base, comp)
    if stored.rows:  # which question each row is (task, doc_id / row of the file), after split and index
        import pandas as pd

        ids = pd.concat([stored.rows[s] for s in ("test", "ood") if s in stored.rows], ignore_index=True)
        for j, col in enumerate(ids.columns):
            predictions.insert(2 + j, col, ids[col].to_numpy())
    return RunResult(metrics, predictions, base, comp)


def inference_batch_size(cfg: dict, device: str) -> int:
    """The user's ``batch_size``, else on CPU the model's ``inference_batch_size``, else 256.

    Large CNNs at 160-224 px run several times faster on CPU in small batches, whose activations stay in reused
    memory (see :mod:`uqcompress._malloc`); on a GPU large batches win.

    >>> inference_batch_size({"batch_size": None, "model": {"inference_batch_size": 4}}, "cpu")
    4
    >>> inference_batch_size({"batch_size": None, "model": {"inference_batch_size": 4}}, "cuda")
    256
    >>> inference_batch_size({"batch_size": 32, "model": {"inference_batch_size": 4}}, "cpu")
    32
    """
    cpu_batch = (cfg.get("model") or {}).get("inference_batch_size") if device == "cpu" else None
    return int(cfg.get("batch_size") or cpu_batch or 256)


def start_run(cfg: dict) -> Runner:
    """What every run sets before its first model (the main command's and each ``python -m uqcompress.tune``):
    progress, torch threads, the seed, the device, the inference batch size and the model's latency options (written
    into ``cfg``); returns the run's :class:`~uqcompress.runner.Runner`."""
    cfg["latency"] = {**cfg["latency"], **dict(cfg["model"].get("latency") or {})}  # a model may ask for less
    set_progress(bool(cfg["progress"]))
    if cfg.get("threads"):
        torch.set_num_threads(int(cfg["threads"]))
    torch.manual_seed(cfg["seed"])
    device = resolve_device(cfg["device"])
    cfg["batch_size"] = inference_batch_size(cfg, device.type)
    return Runner(device, cfg["batch_size"], cfg["progress"])


def run_config(cfg: dict) -> RunResult:
    """The whole run from a plain config dict (what the Hydra app passes, resolved)."""
    cfg = _merge(DEFAULTS, cfg)
    validate_config(cfg)  # every option, range and modality, before any data or model work (uqcompress.validate)
    if (cfg.get("outputs") or {}).get("name", "none") != "none":
        return run_outputs(cfg)
    from uqcompress.predictor import check_exportable  # here: a stored-outputs run never imports the predictor

    check_exportable(cfg)  # a deploy.export that could not be loaded back is refused before any work
    runner = start_run(cfg)
    device = runner.device
    data, ood = load_data(cfg)
    baseline = build_model(dict(cfg["model"]), data, BuildContext(cfg["seed"], str(device), cfg["progress"], runner))
    runner.place(baseline)  # once per run; the compressed copy is made where its scheme runs
    compressed = compress(baseline, dict(cfg["quant"]), data["calibration"].x,
                          CompressContext(cfg["seed"], str(device), cfg["progress"], runner=runner))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", category=UserWarning)  # torch.ao deprecation chatter
        result = evaluate_bundles(baseline, compressed, data, ood, cfg, runner)
    meta = config_facts(cfg)  # the whole resolved config: config.<group> = choice, config.<path> = each option
    if data.info.get("label_mapping"):  # string labels -> ids: report the mapping as class names in id order
        mapping = data.info["label_mapping"]
        meta["data.label_mapping"] = sorted(mapping, key=mapping.get)
    for k, v in baseline.info.items():
        if isinstance(v, (str, int, float, bool)):
            meta[f"info.baseline.{k}"] = v
    for k in ("source", "ood_source"):  # which file / package / route the data came from
        if isinstance(data.info.get(k), str):
            meta[f"data.{k}"] = data.info[k]
    result.metrics.update(meta)
    deploy = dict(cfg.get("deploy") or {})
    if deploy.get("export"):  # deploy.export=PATH: one-file SelectivePredictor of the compressed (or baseline) model
        from uqcompress.predictor import export_run

        path = export_run(result, cfg, data, deploy["export"], which=deploy.get("model", "compressed"),
                          fallback=deploy.get("fallback"))
        result.metrics["deploy.path"] = str(path)
    return result


def run_outputs(cfg: dict) -> RunResult:
    """A run over stored outputs (``outputs=lm_eval | arrays``): model, quant, data and ood settings are not used."""
    from uqcompress.outputs import check_needs, load_outputs, unused_overrides

    cfg = _merge(DEFAULTS, cfg)
    ocfg = dict(cfg["outputs"])
    check_needs(cfg, ocfg["name"])  # a scorer or selector that needs the model is refused before any file is read
    if (cfg.get("deploy") or {}).get("export"):
        raise ValueError(f"deploy.export needs a model, but outputs={ocfg['name']} holds only stored outputs")
    set_progress(bool(cfg["progress"]))
    if cfg.get("threads"):
        torch.set_num_threads(int(cfg["threads"]))
    unused = unused_overrides()
    if unused:
        log.warning("outputs=%s reads both models' outputs from files: %s not used", ocfg["name"], ", ".join(unused))
    else:
        log.info("outputs=%s: both models' outputs are read from files; model, quant, data and ood settings are not "
                 "used", ocfg["name"])
    stored = load_outputs(ocfg, seed=int(cfg["seed"]))
    limit = cfg.get("limit")
    if limit:  # quick runs: cap each split (the whole-run all.* / task.* keys still cover every question)
        for outs in (stored.baseline, stored.compressed):
            for k, o in outs.items():
                outs[k] = Outputs(o.logits[: int(limit)], None if o.labels is None else o.labels[: int(limit)])
        stored.rows = {k: r.head(int(limit)) for k, r in stored.rows.items()}
    result = evaluate_stored(stored, cfg)
    result.metrics.update({
        "config.outputs": ocfg["name"], "config.uncertainty": cfg["uncertainty"]["name"],
        "config.selector": cfg["selector"]["name"], "config.seed": cfg["seed"],
        # short names of the two runs, for labels in sweep reports (full paths: outputs.baseline / .compressed)
        "config.baseline": _short_name(ocfg.get("baseline")), "config.compressed": _short_name(ocfg.get("compressed")),
    })
    return result


def _short_name(spec: Any) -> str:
    """A run's name from its path(s): the folder or the file's stem (``runs/int4`` -> ``int4``).

    >>> _short_name("runs/int4/"), _short_name("out/base.npz"), _short_name(["a/x.jsonl", "a/y.jsonl"])
    ('int4', 'base', 'a')
    """
    from pathlib import Path

    paths = [Path(str(s)) for s in (spec if isinstance(spec, (list, tuple)) else [spec])]
    if len(paths) > 1:
        return paths[0].parent.name
    return paths[0].stem if paths[0].suffix in (".npz", ".pt", ".pth", ".parquet", ".jsonl") else paths[0].name


def run_title(cfg: dict) -> str:
    """The title of a run's table: what was compared, how it was scored and selected.

    >>> run_title({"outputs": {"name": "none"}, "model": {"name": "small_cnn"}, "quant": {"name": "int8"},
    ...            "data": {"name": "mnist"}, "uncertainty": {"name": "msp"}, "selector": {"name": "coverage"}})
    'small_cnn × int8 on mnist (uncertainty=msp, selector=coverage)'
    """
    how = f"(uncertainty={cfg['uncertainty']['name']}, selector={cfg['selector']['name']})"
    out = cfg.get("outputs") or {}
    if out.get("name", "none") != "none":
        return f"outputs={out['name']}: {out.get('baseline')} vs {out.get('compressed')} {how}"
    return f"{cfg['model']['name']} × {cfg['quant']['name']} on {cfg['data']['name']} {how}"
