"""The plan of a tune run: every option, budget and scheme checked in one line before any model work."""
from __future__ import annotations

import pytest

from uqcompress.pipeline import DEFAULTS, _merge
from uqcompress.registry import UnknownNameError
from uqcompress.tune.__main__ import check_overrides
from uqcompress.tune.options import TuneOptions, plan_tune, scheme_config

BASE = {"model": {"name": "small_cnn"}, "data": {"name": "mnist"}, "quant": {"name": "int8", "mode": "auto"},
        "seed": 0}


def plan(**over):
    return plan_tune(_merge(DEFAULTS, {**BASE, **over}))


@pytest.mark.parametrize("tune, message", [
    ({"scheme": ["int8"]}, "unknown tune option(s) ['scheme']; tune options: schemes, rankings"),
    ({"schemes": []}, "tune.schemes=[] must be a non-empty list"),
    ({"schemes": ["int8", "int8"]}, "tune.schemes=['int8', 'int8'] names a scheme twice"),
    ({"rankings": ["best"]}, "tune.rankings=['best'] must list one or both of: revert, alone"),
    ({"ranking_samples": 2}, "tune.ranking_samples=2 must be an integer >= 8"),
    ({"control_max_drop": 2}, "tune.control_max_drop=2 must be an accuracy drop in [0, 1]"),
    ({"max_float_layers": 0}, "tune.max_float_layers=0 must be an integer >= 1 or null"),
    ({"export": "yes"}, "tune.export='yes' must be true or false"),
])
def test_bad_tune_options_fail_in_one_line(tune, message):
    with pytest.raises(ValueError) as e:
        plan(tune=tune, budget={"flips": 0.03})
    assert str(e.value).startswith(message) and "\n" not in str(e.value)


def test_unknown_scheme_lists_the_schemes():
    with pytest.raises(UnknownNameError, match="unknown quant 'int9'; choose one of: .*int8_dynamic"):
        plan(tune={"schemes": ["int8", "int9"]}, budget={"flips": 0.03})


def test_scheme_configs_come_from_quant_or_their_yaml():
    cfg = {**BASE, "quant": {"name": "int8", "mode": "per_layer", "skip": ["features.0"]}}
    assert scheme_config("int8", cfg) == cfg["quant"]  # quant.* overrides apply to the scheme quant= names
    dyn = scheme_config("int8_dynamic", cfg)
    assert dyn["name"] == "int8_dynamic" and dyn["target"] == "all"  # conf/quant/int8_dynamic.yaml


def test_budget_risk_sets_the_selector_of_every_evaluation():
    p = plan(tune={"schemes": ["int8"]}, budget={"risk": 0.05, "coverage": 0.8})
    assert p.eval_cfg["selector"]["target"] == 0.05 and p.eval_cfg["selector"]["name"] in ("risk", "risk_guarantee")
    assert plan(budget={"flips": 0.03}).eval_cfg["selector"] == DEFAULTS["selector"]


def test_export_goes_to_deploy_export_or_the_run_folder(tmp_path):
    assert plan(budget={"flips": 0.03}).export_path is None  # Python API without a folder: nothing exported
    p = plan_tune(_merge(DEFAULTS, {**BASE, "budget": {"flips": 0.03}}), tmp_path)
    assert p.export_path == tmp_path / "predictor.pt"
    p = plan(budget={"flips": 0.03}, deploy={"export": str(tmp_path / "x.pt")})
    assert p.export_path == tmp_path / "x.pt"
    assert plan(budget={"flips": 0.03}, tune={"export": False}).export_path is None


def test_an_undeployable_model_is_refused_unless_export_is_off(tmp_path):
    with pytest.raises(ValueError, match="deploy.export cannot save model=smollm2.*; or set tune.export=false"):
        plan_tune(_merge(DEFAULTS, {**BASE, "model": {"name": "smollm2"}, "data": {"name": "bigbench_mc"},
                                         "ood": {"name": "none"}, "budget": {"flips": 0.03}}), tmp_path)


def test_check_overrides():
    assert check_overrides(["budget.flips=0.03", "tune.schemes=[int8]", "model=minilm", "--multirun"]) is None
    assert check_overrides(["+budget.foo=1"]).startswith("unknown budget key(s) ['foo']")
    assert check_overrides(["tune.ranking=alone"]).startswith("unknown tune option(s) ['ranking']")


def test_defaults_match_the_yaml():
    from omegaconf import OmegaConf

    from uqcompress.tune.options import CONF

    y = OmegaConf.to_container(OmegaConf.load(CONF / "tune.yaml"))
    d = TuneOptions.from_config(y["tune"])
    assert d == TuneOptions(schemes=("int8",)) and set(y["budget"]) == {"flips", "kl", "accuracy_drop", "risk",
                                                                         "coverage", "delta"}


def test_recipe_chains_parse_and_expand_each_scheme_that_takes_recipes():
    from uqcompress.tune.options import recipe_variants

    o = TuneOptions.from_config({"recipes": ["none", "distill+bias_correction", ["minmax"]]})
    assert o.recipes == ((), ("distill", "bias_correction"), ("minmax",))
    with pytest.raises(ValueError, match="names a recipe chain twice"):
        TuneOptions.from_config({"recipes": ["none", "none"]})
    with pytest.raises(ValueError, match="at least one recipe chain"):
        TuneOptions.from_config({"recipes": []})
    int8 = [q.get("recipe") for q in recipe_variants({"name": "int8"}, o.recipes)]
    assert int8 == [None, ["distill", "bias_correction"], ["minmax"]]
    # per_layer mode takes bias_correction only: the FX recipes are left out, not an error
    per_layer = recipe_variants({"name": "int8", "mode": "per_layer"}, o.recipes)
    assert [q.get("recipe") for q in per_layer] == [None]
    # a recipe the user chose is kept as given; a scheme without recipes is tried as is
    assert recipe_variants({"name": "int8", "recipe": ["minmax"]}, o.recipes) == [{"name": "int8", "recipe": ["minmax"]}]
    assert recipe_variants({"name": "int8_dynamic"}, o.recipes) == [{"name": "int8_dynamic"}]
    p = plan(budget={"flips": 0.03}, tune={"recipes": ["none", "bias_correction", "distill@onednn", "none@onednn"]})
    assert [(q.get("recipe"), q.get("backend")) for q in p.schemes] == [
        (None, None), (["bias_correction"], None), (["distill"], "onednn"), (None, "onednn")]  # None: the default x86
