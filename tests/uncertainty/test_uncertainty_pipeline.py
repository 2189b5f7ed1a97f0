"""Every scorer and selector, from its YAML, through the pipeline on baseline and int8 (small slice, tiny model)."""
from pathlib import Path

import pytest
from omegaconf import OmegaConf

from uqcompress.cache import set_cache_dir
from uqcompress.compress import compress
from uqcompress.models import build_model
from uqcompress.pipeline import _merge, DEFAULTS, evaluate_bundles, load_data
from uqcompress.selection import SELECTORS
from uqcompress.uncertainty import SCORERS

CONF = Path(__file__).resolve().parents[2] / "uqcompress" / "conf"
BASE = {
    "seed": 0, "limit": 120, "fit_limit": 120, "progress": False, "batch_size": 128,
    "data": {"name": "mnist", "splits": {"fit": 0.6, "calibration": 0.2, "test": 0.2}},
    "model": {"name": "small_cnn", "epochs": 1, "width": 8, "hidden": 32},
    "quant": {"name": "int8", "calibration_samples": 64},
    "ood": {"name": "animal_mnist", "limit": 80},
    "latency": {"batch_size": 8, "repeats": 1, "warmup": 0},
}


def group(name: str, choice: str, **override) -> dict:
    """conf/<name>/<choice>.yaml resolved as Hydra would (``${seed}`` from the root)."""
    cfg = OmegaConf.create({"seed": 0, name: OmegaConf.load(CONF / name / f"{choice}.yaml")})
    out = OmegaConf.to_container(cfg, resolve=True)[name]
    return {**out, **override}


@pytest.fixture(scope="module")
def cache(tmp_path_factory):
    set_cache_dir(tmp_path_factory.mktemp("cache"))
    yield
    set_cache_dir(None)


@pytest.fixture(scope="module")
def run(cache):
    """Data, baseline and int8 model built once; ``run(cfg)`` = the pipeline's evaluation of both."""
    cfg0 = _merge(DEFAULTS, BASE)
    data, ood = load_data(cfg0)
    baseline = build_model(cfg0["model"], data)
    compressed = compress(baseline, cfg0["quant"], data["calibration"].x)

    def evaluate(over: dict):
        return evaluate_bundles(baseline, compressed, data, ood, {**cfg0, **over})

    return evaluate


def check(metrics: dict) -> None:
    for who in ("baseline", "compressed"):
        assert 0.0 <= metrics[f"{who}.ood_auroc"] <= 1.0
        for k in ("coverage", "selective_risk", "calibration_coverage", "calibration_selective_risk"):
            assert k in [m.split(".", 1)[1] for m in metrics if m.startswith(who + ".")], k


@pytest.mark.parametrize("scorer", SCORERS.names())
def test_every_scorer_runs_on_baseline_and_int8(run, scorer):
    over = {"samples": 5} if scorer == "mc_dropout" else {}
    res = run({"uncertainty": group("uncertainty", scorer, **over),
                      "selector": group("selector", "coverage")})
    m = res.metrics
    check(m)
    assert m["compressed.scheme"] == "int8"
    assert abs(m["compressed.calibration_coverage"] - 0.9) < 0.05
    if scorer in ("temperature",):
        assert m["compressed.temperature"] > 0


@pytest.mark.parametrize("selector", SELECTORS.names())
def test_every_selector_runs_on_baseline_and_int8(run, selector):
    unc = group("uncertainty", "mc_dropout", samples=5, mode="head") if selector == "mc_interval" else \
        group("uncertainty", "msp")
    res = run({"uncertainty": unc, "selector": group("selector", selector)})
    m = res.metrics
    check(m)
    if selector == "risk":  # the target holds on calibration by construction (or nothing is accepted)
        assert m["compressed.calibration_coverage"] == 0 or m["compressed.calibration_selective_risk"] <= 0.02 + 1e-12
    if selector == "mc_interval":
        assert 0 < m["compressed.coverage"] < 1


def test_knn_beats_msp_at_detecting_animals(run):
    """Far-OOD (animal silhouettes vs digits): the feature-space score separates better than MSP on this model."""
    auroc = {s: run({"uncertainty": group("uncertainty", s, **({"k": 5} if s == "knn" else {})),
                     "selector": group("selector", "coverage")}).metrics["baseline.ood_auroc"]
             for s in ("msp", "knn")}
    assert auroc["knn"] > auroc["msp"], auroc
