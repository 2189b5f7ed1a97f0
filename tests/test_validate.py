"""uqcompress.validate: every shipped config passes, each kind of mistake is one line naming the option and the fix."""
from __future__ import annotations

from pathlib import Path

import pytest
from hydra import compose, initialize_config_module
from omegaconf import OmegaConf

from uqcompress.compress import SCHEMES
from uqcompress.data import DATASETS
from uqcompress.models import MODELS
from uqcompress.validate import ConfigError, calibration_warnings, validate_config, validate_group

CONF = Path(__file__).resolve().parents[1] / "uqcompress" / "conf"


def composed(*overrides: str) -> dict:
    """The resolved config the CLI would pass for ``overrides`` (Hydra's own composition)."""
    with initialize_config_module(config_module="uqcompress.conf", version_base=None):
        cfg = compose(config_name="config", overrides=list(overrides))
    return OmegaConf.to_container(cfg, resolve=True)


def error(cfg: dict) -> str:
    with pytest.raises(ConfigError) as e:
        validate_config(cfg)
    msg = str(e.value)
    assert "\n" not in msg
    return msg


@pytest.mark.parametrize("data", sorted(p.stem for p in (CONF / "data").glob("*.yaml")))
def test_every_data_yaml_with_the_ood_it_brings_is_valid(data):
    model = {"text": "minilm", "multiple_choice": "smollm2"}.get(DATASETS.get(data).modality, "small_cnn")
    validate_config(composed(f"data={data}", f"model={model}"))


@pytest.mark.parametrize("group", ["model", "quant", "uncertainty", "selector", "ood"])
def test_every_shipped_yaml_of_a_group_is_valid(group):
    # ood sets are tried with an ID set of their own modality
    for path in sorted((CONF / group).glob("*.yaml")):
        extra = []
        if group == "ood" and path.stem in ("trec", "sms_spam", "rotten_tomatoes", "csv", "hf_disk"):
            extra = ["data=trec" if path.stem != "trec" else "data=sms_spam", "model=minilm"]
        if group == "model":  # models are tried with a data set of their own modality
            extra = {"text": ["data=trec"], "multiple_choice": ["data=bigbench_mc"]}.get(
                MODELS.get(path.stem).modality, [])
        validate_config(composed(f"{group}={path.stem}", *extra))


def test_yaml_keys_are_exactly_options_their_loader_declares():
    for group in ("data", "ood"):
        for path in (CONF / group).glob("*.yaml"):
            keys = set(OmegaConf.load(path)) - {"defaults", "name"}
            if path.stem == "none":
                assert not keys
                continue
            declared = set(DATASETS.get(OmegaConf.load(path).name).options) | ({"limit"} if group == "ood" else set())
            assert keys <= declared, (path, keys - declared)


def test_all_problems_in_one_line():
    msg = error({"seed": -1, "limit": 0, "device": "gpu", "batch_size": 2.5, "progress": "yes",
                 "latency": {"repeats": 0, "warmpu": 1}, "selector": {"name": "coverage", "target": 1.5}})
    assert msg.startswith("8 problems in the config: ")
    for part in ("seed=-1 must be a whole number >= 0", "limit=0 must be a whole number >= 1, or null for all",
                 "device='gpu' is not one of: auto, cpu, cuda", "batch_size=2.5 must be a whole number >= 1",
                 "progress='yes' must be true or false", "latency.repeats=0 must be a whole number >= 1",
                 "unknown option 'latency.warmpu'; did you mean latency.warmup?",
                 "selector.target=1.5 must be in (0, 1]"):
        assert part in msg, part


@pytest.mark.parametrize("cfg, expected", [
    ({"limt": 5}, "unknown option 'limt'; did you mean limit?"),
    ({"data": {"name": "mnist", "limit": 40}}, "data=mnist has no option 'limit'; its options: splits (limit=N caps the "
                                               "evaluated splits of the run, fit_limit=N the fit split)"),
    ({"data": {"name": "trec", "max_sample": 40}}, "data=trec has no option 'max_sample'; did you mean data.max_samples?"),
    ({"data": {"name": "trec", "max_samples": 0}}, "data.max_samples=0 must be a whole number >= 1, or null for all"),
    ({"data": {"name": "bigbench_mc", "limit": -1}}, "data.limit=-1 must be a whole number >= 1, or null for all"),
    ({"data": {"name": "mnist"}, "ood": {"name": "animal_mnist", "limit": 0}}, "ood.limit=0 must be a whole number"),
    ({"ood": {"name": "none", "limit": 5}}, "ood=none takes no options; drop ood.limit or choose an OOD set"),
    ({"data": {"name": "mnistt"}}, "unknown data 'mnistt'; choose one of: animal_mnist, bigbench_mc"),
    ({"quant": {"name": "int9"}}, "unknown quant 'int9'; choose one of:"),
    ({"model": {"name": "resnet5000"}}, "unknown model 'resnet5000'; choose one of:"),
    ({"uncertainty": {"name": "msp", "temperatur": True}}, "uncertainty 'msp' has no option 'temperatur'; its options: "
                                                            "temperature (did you mean uncertainty.temperature?)"),
    ({"selector": {"name": "risk", "target": 1.0}}, "selector.target=1.0 must be a selective risk in [0, 1)"),
    ({"deploy": {"export": None, "model": "both"}}, "deploy.model='both' is not one of: compressed, baseline"),
    ({"latency": {"threads": 0}}, "latency.threads=0 must be a whole number >= 1, or null for all"),
    ({"data": {"name": "trec"}, "ood": {"name": "animal_mnist"}},
     "ood=animal_mnist is image but data=trec is text; use ood=none or a text OOD set (ood=csv, ood=rotten_tomatoes, "
     "ood=sms_spam)"),
    ({"data": {"name": "bigbench_mc"}, "ood": {"name": "trec"}},
     "ood=trec is text but data=bigbench_mc is multiple_choice; use ood=none"),
])
def test_each_mistake_is_named(cfg, expected):
    assert expected in error(cfg)


def test_a_model_entry_that_declares_its_modality_gets_the_override_to_add(monkeypatch):
    """The modality check reads ``modality`` off the registry entry (the lead's ModelEntry carries it)."""

    def lm(cfg, data, ctx):
        raise AssertionError("never built: validation comes first")

    lm.modality = "multiple_choice"
    monkeypatch.setitem(MODELS._items, "toy_lm", lm)
    msg = error(composed("model=smollm2") | {"model": {"name": "toy_lm"}})
    assert msg == ("model=toy_lm takes multiple_choice inputs but data=mnist is image; add data=bigbench_mc ood=none "
                   "(data sets of that kind: bigbench_mc, knowledge, mmlu)")
    validate_config(composed("data=bigbench_mc") | {"model": {"name": "toy_lm"}})


def test_validate_group_is_the_hook_for_declared_model_and_quant_options(monkeypatch):
    def scheme(bundle, cfg, x, ctx):
        raise AssertionError("never applied")

    def both(opts):
        if opts.get("bits") == 4 and opts.get("group_size") is None:
            raise ValueError("quant.bits=4 needs quant.group_size")

    def bits(value, key):
        if value not in (4, 8):
            raise ValueError(f"{key}={value} must be 4 or 8")

    scheme.options, scheme.validate = {"bits": bits, "group_size": None}, both
    monkeypatch.setitem(SCHEMES._items, "toy_q", scheme)
    assert validate_group("quant", {"quant": {"name": "toy_q", "bits": 8}}) == []
    assert validate_group("quant", {"quant": {"name": "toy_q", "bits": 3, "grup_size": 2}}) == [
        "quant=toy_q has no option 'grup_size'; did you mean quant.group_size?", "quant.bits=3 must be 4 or 8"]
    assert validate_group("quant", {"quant": {"name": "toy_q", "bits": 4}}) == ["quant.bits=4 needs quant.group_size"]
    # a model entry: the pipeline's own model options stay valid next to the declared ones
    model = lambda cfg, data, ctx: None  # noqa: E731
    model.options = ["width"]
    monkeypatch.setitem(MODELS._items, "toy_m", model)
    assert validate_group("model", {"model": {"name": "toy_m", "width": 8, "latency": {}, "inference_batch_size": 4}}) == []
    assert validate_group("model", {"model": {"name": "toy_m", "widht": 8}}) == [
        "model=toy_m has no option 'widht'; did you mean model.width?"]


@pytest.mark.parametrize("selector, n, warns", [
    ({"name": "coverage", "target": 0.9}, 1, True), ({"name": "coverage", "target": 0.9}, 99, True),
    ({"name": "coverage", "target": 0.9}, 100, False), ({"name": "coverage", "target": 0.5}, 19, True),
    ({"name": "coverage", "target": 0.5}, 20, False), ({"name": "risk", "target": 0.05}, 199, True),
    ({"name": "risk", "target": 0.05}, 200, False), ({"name": "threshold", "value": 0.5}, 1, False),
    ({"name": "coverage", "target": 1.0}, 1, False),
])
def test_calibration_warning_threshold_is_ten_on_the_rarer_side(selector, n, warns):
    got = calibration_warnings(selector, n)
    assert bool(got) == warns
    if warns:
        assert got[0].startswith(f"calibration split has {n} sample") and "10 needed" in got[0]


@pytest.mark.parametrize("overrides, message", [
    (["+model.epoch=3"], "model=small_cnn has no option 'epoch'; did you mean model.epochs?"),
    (["model=minilm", "data=trec", "+model.finetune=1"], "did you mean model.finetune_layers?"),
    (["quant=prune_global_l1", "+quant.amout=0.3"], "quant=prune_global_l1 has no option 'amout'; did you mean quant.amount?"),
    (["quant=prune_int8", "+quant.steps.0.amout=1"], "quant=prune_int8: step 0 (prune_global_l1) has unknown option(s) ['amout']"),
])
def test_model_and_quant_options_are_declared_by_their_registry_entries(overrides, message):
    """Every model and scheme entry declares the options it reads: a typo is caught before any work."""
    assert message in error(composed(*overrides))


def test_every_model_and_scheme_declares_its_options():
    assert all(MODELS.get(n).options is not None for n in MODELS.names())
    assert all(SCHEMES.get(n).options is not None for n in SCHEMES.names())
