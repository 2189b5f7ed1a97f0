"""quant.recipe (uqcompress/compress/recipes.py): each recipe runs, changes the model, is cached under its own key
(and its own observer statistics), reports its cost and the rows it saw, is refused in one line where unsupported
(before any work), distill lowers the calibration KL to the baseline, and a recipe model exports and loads."""
from __future__ import annotations

import torch

import pytest

from uqcompress.compress import SCHEMES, CompressContext, compress
from uqcompress.compress._state import cached_state_path
from uqcompress.compress.recipes import kl_to_baseline
from uqcompress.runner import Runner

CTX = CompressContext(progress=False, runner=Runner(progress=False, batch_size=32))
RECIPE_CFGS = {
    "minmax": {"recipe": ["minmax"]},
    "bias_correction": {"recipe": ["bias_correction"]},
    "distill": {"recipe": ["distill"], "distill": {"steps": 40, "lr": 1e-3, "batch_size": 32}},
    "distill+bias_correction": {"recipe": ["distill", "bias_correction"],
                                "distill": {"steps": 10, "lr": 1e-3, "batch_size": 32}},
}


def _x(seed: int, n: int = 96) -> torch.Tensor:
    return torch.randn(n, 3, 8, 8, generator=torch.Generator().manual_seed(seed))


@pytest.fixture
def sharp_block(block):
    """The Block test net with a 10x head: logits far enough apart that int8 error shows in the KL."""
    with torch.no_grad():
        block.module.head.weight.mul_(10)
    return block


def _kl(base, comp, x) -> float:
    return float(kl_to_baseline(base.logits(x), comp.logits(x)))


@pytest.mark.parametrize("which", sorted(RECIPE_CFGS))
def test_each_recipe_runs_changes_the_model_reports_its_cost_and_is_cached_separately(which, sharp_block, tmp_cache):
    x = _x(1)
    plain = compress(sharp_block, {"name": "int8", "calibration_samples": 96}, x, CTX)
    cfg = {"name": "int8", "calibration_samples": 96, **RECIPE_CFGS[which]}
    comp = compress(sharp_block, cfg, x, CTX)
    assert comp.fingerprint != plain.fingerprint
    assert cached_state_path("int8", comp.fingerprint).is_file()  # its own cache entry
    assert not comp.info["compressed_from_cache"]
    assert not torch.equal(comp.logits(x), plain.logits(x))  # the recipe changed the quantized model
    assert comp.info["recipe"] == which
    assert comp.info["recipe_rows"] == "calibration[:96]"  # only the calibration rows it was given
    if which != "minmax":  # minmax costs the calibration pass plain int8 pays too
        assert comp.info["recipe_seconds"] > 0 and comp.info["recipe_passes"] >= 1
    warm = compress(sharp_block, cfg, x, CTX)  # a warm run loads the recipe's state: same model, no work
    assert warm.info["compressed_from_cache"] and warm.fingerprint == comp.fingerprint
    assert torch.equal(warm.logits(x), comp.logits(x))


def test_distill_options_are_part_of_the_key(sharp_block, tmp_cache):
    x = _x(1, 32)
    a = compress(sharp_block, {"name": "int8", "recipe": ["distill"], "distill": {"steps": 2}}, x, CTX)
    b = compress(sharp_block, {"name": "int8", "recipe": ["distill"], "distill": {"steps": 3}}, x, CTX)
    assert a.fingerprint != b.fingerprint and not b.info["compressed_from_cache"]
    # distill options without the distill recipe do not change plain int8 (nor its key)
    p = compress(sharp_block, {"name": "int8"}, x, CTX)
    assert compress(sharp_block, {"name": "int8", "distill": {"steps": 3}}, x, CTX).fingerprint == p.fingerprint


def test_minmax_does_not_reuse_the_default_observer_statistics(sharp_block, tmp_cache):
    """The shared observer-statistics cache is keyed by observer type: minmax after plain int8 calibrates itself
    and matches a minmax model built in a fresh cache."""
    x = _x(1, 64)
    compress(sharp_block, {"name": "int8"}, x, CTX)
    after = compress(sharp_block, {"name": "int8", "recipe": ["minmax"]}, x, CTX).logits(x)
    from uqcompress.cache import set_cache_dir

    set_cache_dir(tmp_cache / "fresh")
    fresh = compress(sharp_block, {"name": "int8", "recipe": ["minmax"]}, x, CTX).logits(x)
    assert torch.equal(after, fresh)


def test_distill_lowers_the_calibration_kl(sharp_block, tmp_cache):
    """Measured on this net: plain int8 KL 8.6e-5, distill (40 steps, lr 1e-3, starting from plain int8's activation
    statistics) 8.4e-5 on the calibration rows. We ask for a strictly lower calibration KL (what the recipe
    minimises), and no more than 10% worse on held-out rows (a tiny 128-row fine-tune may not generalise; it measured
    9.0e-5 -> 8.5e-5)."""
    x, held = _x(1, 128), _x(2, 128)
    plain = compress(sharp_block, {"name": "int8", "calibration_samples": 128}, x, CTX)
    dist = compress(sharp_block, {"name": "int8", "calibration_samples": 128, **RECIPE_CFGS["distill"]}, x, CTX)
    assert _kl(sharp_block, dist, x) < _kl(sharp_block, plain, x)
    assert _kl(sharp_block, dist, held) < 1.1 * _kl(sharp_block, plain, held)


@pytest.mark.parametrize("cfg, want", [
    ({"recipe": ["gptq"]}, "unknown recipe 'gptq'"),
    ({"recipe": "distill,minmax"}, "unknown recipe 'distill,minmax'"),
    ({"recipe": ["minmax", "distill"]}, "'minmax' and 'distill' both choose the observers"),
    ({"recipe": ["minmax", "minmax"]}, "names a recipe twice"),
    ({"recipe": ["distill"], "mode": "per_layer"}, "needs quant.mode=fx"),
    ({"recipe": ["distill"], "distill": {"stepz": 3}}, "quant.distill: unknown option(s) ['stepz']"),
    ({"recipe": ["distill"], "distill": {"steps": 0}}, "quant.distill.steps=0 must be"),
])
def test_bad_recipes_are_one_line_before_any_work(cfg, want):
    with pytest.raises(ValueError) as e:
        SCHEMES.get("int8").validate({"name": "int8", **cfg})
    assert want in str(e.value) and "\n" not in str(e.value)


def test_what_a_model_cannot_take_is_a_typed_error_the_tune_skips_and_a_config_error_stops_it(monkeypatch, caplog):
    """RecipeUnsupported (a mode, device or layer the model lacks) is left out by the tune with one log line; any
    other ValueError of the build (a config error) stops the tune: the tune no longer reads the message's text."""
    import logging

    from uqcompress.compress.recipes import RECIPES, RecipeUnsupported, check_recipes
    from uqcompress.tune import run as tune_run

    with pytest.raises(RecipeUnsupported, match="needs quant.mode=fx"):
        check_recipes("int8", ["distill"], "per_layer", RECIPES)
    with pytest.raises(RecipeUnsupported, match="does not support quant=int8_dynamic"):
        check_recipes("int8_dynamic", ["peg"], None, RECIPES)
    with pytest.raises(RecipeUnsupported, match=r"recipe 'hqq' \(torchao's HQQ .*\) runs on cpu only; this model is "
                                                r"on cuda"):  # each Recipe's devices: the CPU int4 path
        check_recipes("int4_weight_only", ["hqq"], None, ("hqq",), "cuda")
    assert check_recipes("int4_weight_only", ["hqq"], None, ("hqq",), "cpu") == ["hqq"]
    for names in (["gptq"], ["minmax", "minmax"], ["minmax", "distill"]):  # config errors: not "unsupported"
        with pytest.raises(ValueError) as e:
            check_recipes("int8", names, "fx", RECIPES)
        assert not isinstance(e.value, RecipeUnsupported)

    tuner = object.__new__(tune_run._Tuner)  # only what scheme_candidate reads before the build
    tuner.plan, tuner.baseline, tuner.cal, tuner.ctx = type("P", (), {"schemes": [{}]})(), None, type(
        "C", (), {"x": None})(), None
    quant = {"name": "int8", "recipe": ["distill"]}
    raised: list[Exception] = []
    monkeypatch.setattr(tune_run, "compress", lambda *a: (_ for _ in ()).throw(raised[-1]))
    raised.append(RecipeUnsupported("quant.recipe: recipe 'distill' needs quant.mode=fx"))
    with caplog.at_level(logging.INFO, logger=tune_run.log.name):
        assert tuner.scheme_candidate(0, quant) is None
    assert "int8+distill left out: quant.recipe: recipe 'distill' needs quant.mode=fx" in caplog.text
    raised.append(ValueError("quant.recipe: some config error"))  # the old text match let this one pass as a skip
    with pytest.raises(ValueError, match="some config error"):
        tuner.scheme_candidate(0, quant)


def test_a_recipe_on_a_scheme_without_recipes_is_refused_by_the_validator():
    from uqcompress.validate import ConfigError, validate_config

    with pytest.raises(ConfigError) as e:
        validate_config({"model": {"name": "small_cnn"}, "data": {"name": "mnist"},
                         "quant": {"name": "int8_dynamic", "recipe": ["distill"]}})
    assert "recipe" in str(e.value) and "\n" not in str(e.value)


def test_recipe_model_exports_and_loads_bit_identical(tmp_path, tmp_cache):
    """The recipe models convert to plain int8's structure: a saved predictor rebuilds and loads them."""
    from test_deploy import CTX as DEPLOY_CTX, bundles
    from uqcompress.predictor import SelectivePredictor
    from uqcompress.selection import build_selector
    from uqcompress.uncertainty import build_scorer

    base, cfg, x, shape, _ = bundles("small_cnn", tmp_path, None)
    for opts in RECIPE_CFGS.values():
        qcfg = {"name": "int8", "calibration_samples": 16, **opts,
                **({"distill": {"steps": 2}} if "distill" in opts else {})}
        comp = compress(base, qcfg, x, DEPLOY_CTX)
        pred = SelectivePredictor(comp, build_scorer({"name": "msp"}), build_selector({"name": "threshold",
                                                                                      "value": 0.4}),
                                  spec={"model": cfg, "input_shape": shape}, batch_size=8)
        path = pred.save(tmp_path / "p.pt")
        for a, b in zip(pred.predict(x), SelectivePredictor.load(path).predict(x)):
            assert torch.equal(a, b), opts


@pytest.mark.slow  # 24 s on a shared 2-core CPU (trains a tiny small_cnn)
def test_cli_run_names_the_recipe_its_cost_and_rows_in_results(cli, tmp_path):
    import json

    r = cli("quant=int8", "quant.recipe=[distill,bias_correction]", "quant.distill.steps=3",
            "quant.calibration_samples=32", "limit=60", "fit_limit=60", "ood=none", "model.epochs=1",
            "progress=false", "plots=false", "latency.repeats=1", f"hydra.run.dir={tmp_path}")
    assert r.returncode == 0, r.stderr[-3000:]
    res = json.loads((tmp_path / "results.json").read_text())
    assert res["compressed.recipe"] == "distill+bias_correction"
    assert res["compressed.recipe_rows"] == "calibration[:32]"
    assert res["compressed.recipe_seconds"] > 0 and res["compressed.recipe_passes"] > 1


@pytest.mark.slow  # trains a tiny small_cnn
def test_cli_int4_hqq_run_names_its_recipe(cli, tmp_path):
    """quant.recipe=[hqq] is a config key of int4_weight_only (conf/quant/int4_weight_only.yaml), not only an option
    of the Python API: the command runs and results.json names the recipe and that it used no rows."""
    import json

    r = cli("quant=int4_weight_only", "quant.recipe=[hqq]", "limit=60", "fit_limit=60", "ood=none", "model.epochs=1",
            "progress=false", "plots=false", "latency.repeats=1", f"hydra.run.dir={tmp_path}")
    assert r.returncode == 0, r.stderr[-3000:]
    res = json.loads((tmp_path / "results.json").read_text())
    assert res["compressed.recipe"] == "hqq" and res["compressed.recipe_rows"] == "none (weights only)"


def test_cli_refuses_an_unknown_recipe_in_one_line_before_work(cli, tmp_path):
    r = cli("quant=int8", "quant.recipe=[gptq]", "progress=false", f"hydra.run.dir={tmp_path}")
    assert r.returncode == 2, r.stderr[-2000:]
    assert "unknown recipe 'gptq'" in r.stderr and "Traceback" not in r.stderr
    assert not (tmp_path / "results.json").exists()


def test_docstring_examples():
    import doctest

    import uqcompress.compress.recipes as mod

    result = doctest.testmod(mod, optionflags=doctest.ELLIPSIS)
    assert result.attempted > 0 and result.failed == 0


# ---- peg: per-embedding-group output ranges (static int8 per layer) ------------------------------------------------

class _ChannelScale(torch.nn.Module):
    """x * w per channel (fp32 between the quantized layers, like a LayerNorm's affine weight)."""

    def __init__(self, w: torch.Tensor) -> None:
        super().__init__()
        self.register_buffer("w", w)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * self.w


def _outlier_mlp():
    """Linear(16, 32) -> per-channel scale -> ReLU -> Linear(32, 5), whose first layer writes two 'outlier' channels
    100x wider than the others, scaled back down before the next layer: the BERT pattern (the FFN output writes
    the residual stream's outlier dimensions, LayerNorm rescales them) that one per-tensor output scale handles
    badly."""
    from uqcompress.models.base import ModelBundle

    torch.manual_seed(0)
    w = torch.ones(32)
    w[[3, 17]] = 0.01
    net = torch.nn.Sequential(torch.nn.Linear(16, 32), _ChannelScale(w), torch.nn.ReLU(),
                              torch.nn.Linear(32, 5)).eval()
    with torch.no_grad():
        net[0].weight[[3, 17]] *= 100
        net[0].bias[[3, 17]] *= 100
        net[3].weight.mul_(4)  # logits far enough apart that errors show in the KL
    return ModelBundle(net, "outlier_mlp", "outlier-mlp-test", "tabular", 5)


def _rows(seed: int, n: int = 256) -> torch.Tensor:
    return torch.randn(n, 16, generator=torch.Generator().manual_seed(seed))


PEG = {"name": "int8", "mode": "per_layer", "calibration_samples": 256, "recipe": ["peg"]}


def test_peg_groups_output_channels_by_calibration_range_and_lowers_the_error(tmp_cache):
    """Plain per-layer int8 rounds the 30 ordinary channels of layer 0 with the outliers' step; peg gives the two
    outlier channels their own group (they are the widest, so they come first) and cuts the held-out KL (measured:
    plain 2.6e-2, peg 3.6e-4; we ask for 5x lower) and the flips."""
    from uqcompress.compress.peg import GroupedLinear

    mlp, x, held = _outlier_mlp(), _rows(1), _rows(2, 2000)
    plain = compress(mlp, {"name": "int8", "mode": "per_layer", "calibration_samples": 256}, x, CTX)
    peg = compress(mlp, PEG, x, CTX)
    grouped = peg.module[0]
    assert isinstance(grouped, GroupedLinear) and isinstance(peg.module[3], GroupedLinear)
    assert set(grouped.order[:4].tolist()) >= {3, 17}  # the outlier channels share the first group (of 4)
    assert [type(p.module).__name__ for p in grouped.parts] == ["Linear"] * 8  # each group: a quantized int8 Linear
    assert all(p.module.weight().dtype == torch.qint8 for p in grouped.parts)
    scales = [float(p.module.scale) for p in grouped.parts]
    assert scales[0] > 20 * max(scales[1:])  # the outlier group's output step; the others far finer
    ref = mlp.logits(held)
    flips = lambda m: int((m.logits(held).argmax(-1) != ref.argmax(-1)).sum())  # noqa: E731
    assert _kl(mlp, peg, held) < _kl(mlp, plain, held) / 5
    assert flips(peg) < flips(plain)
    assert peg.info["recipe"] == "peg" and peg.info["recipe_rows"] == "calibration[:256]"
    assert peg.info["recipe_passes"] == 2.0  # the fp32 range pass + the calibration pass


def test_peg_is_cached_apart_by_its_options_and_reloads(tmp_cache):
    mlp, x = _outlier_mlp(), _rows(1, 64)
    base_cfg = {**PEG, "calibration_samples": 64}
    plain = compress(mlp, {"name": "int8", "mode": "per_layer", "calibration_samples": 64}, x, CTX)
    a = compress(mlp, base_cfg, x, CTX)
    b = compress(mlp, {**base_cfg, "peg": {"groups": 4}}, x, CTX)
    c = compress(mlp, {**base_cfg, "peg": {"layers": ["0"]}}, x, CTX)
    assert len({plain.fingerprint, a.fingerprint, b.fingerprint, c.fingerprint}) == 4
    assert len(b.module[0].parts) == 4 and type(c.module[3]).__name__ == "QuantWrapper"  # only layer 0 grouped
    warm = compress(mlp, base_cfg, x, CTX)
    assert warm.info["compressed_from_cache"] and torch.equal(warm.logits(x), a.logits(x))
    # the peg options alone (no peg recipe) leave plain int8 and its key alone
    assert compress(mlp, {"name": "int8", "mode": "per_layer", "calibration_samples": 64, "peg": {"groups": 4}},
                    x, CTX).fingerprint == plain.fingerprint


def test_peg_chains_with_bias_correction_on_a_grouped_head(tmp_cache):
    """bias_correction moves the biases of the grouped logits layer, each channel in its group: the calibration mean
    logit error drops to ~0 (checked against the error measured here, independently)."""
    mlp, x = _outlier_mlp(), _rows(1)
    peg = compress(mlp, PEG, x, CTX)
    both = compress(mlp, {**PEG, "recipe": ["peg", "bias_correction"]}, x, CTX)
    err = lambda m: (mlp.logits(x) - m.logits(x)).mean(0).abs().max()  # noqa: E731
    assert err(both) < err(peg) / 4


@pytest.mark.parametrize("cfg, want", [
    ({"recipe": ["peg"], "mode": "fx"}, "needs quant.mode=per_layer"),
    ({"recipe": ["peg"], "peg": {"groups": 1}}, "quant.peg.groups=1 must be a whole number >= 2"),
    ({"recipe": ["peg"], "peg": {"grups": 4}}, "quant.peg: unknown option(s) ['grups']"),
    ({"recipe": ["peg"], "peg": {"layers": "head"}}, "quant.peg.layers='head' must be null"),
])
def test_bad_peg_is_one_line_before_any_work(cfg, want):
    with pytest.raises(ValueError) as e:
        SCHEMES.get("int8").validate({"name": "int8", **cfg})
    assert want in str(e.value) and "\n" not in str(e.value)


def test_peg_on_a_model_fx_traces_is_refused_in_one_line(sharp_block, tmp_cache):
    with pytest.raises(ValueError) as e:
        compress(sharp_block, {"name": "int8", "recipe": ["peg"]}, _x(1, 16), CTX)  # auto -> fx on this net
    assert "recipe 'peg' needs quant.mode=per_layer" in str(e.value) and "\n" not in str(e.value)


def test_peg_layer_pattern_matching_nothing_is_one_line(tmp_cache):
    with pytest.raises(ValueError) as e:
        compress(_outlier_mlp(), {**PEG, "peg": {"layers": ["encoder.*"]}}, _rows(1, 16), CTX)
    assert "quant.peg.layers pattern(s) ['encoder.*'] match no Linear layer" in str(e.value)
    assert "\n" not in str(e.value)


@pytest.mark.slow  # ~15-30 s on a shared 2-core CPU (a randomly initialised MiniLM, 22M parameters)
def test_peg_minilm_exports_and_loads_bit_identical(tmp_path, tmp_cache):
    """A saved peg predictor rebuilds the grouped structure from the config and loads the calibrated channel order."""
    from test_deploy import CTX as DEPLOY_CTX, bundles
    from uqcompress.predictor import SelectivePredictor
    from uqcompress.selection import build_selector
    from uqcompress.uncertainty import build_scorer

    base, cfg, x, shape, _ = bundles("minilm", tmp_path, None)
    comp = compress(base, {"name": "int8", "calibration_samples": 16, "recipe": ["peg"], "peg": {"groups": 4}}, x,
                    DEPLOY_CTX)
    assert comp.quant["mode"] == "per_layer"
    order = {n: m.order for n, m in comp.module.named_modules() if type(m).__name__ == "GroupedLinear"}
    assert len(order) == 37 and any(not torch.equal(o, torch.arange(len(o))) for o in order.values())
    pred = SelectivePredictor(comp, build_scorer({"name": "msp"}), build_selector({"name": "threshold", "value": 0.4}),
                              spec={"model": cfg, "input_shape": shape}, batch_size=8)
    path = pred.save(tmp_path / "p.pt")
    loaded = SelectivePredictor.load(path)
    for name, o in order.items():  # the calibrated channel order is loaded, not the structure's identity
        assert torch.equal(loaded.model.get_submodule(name).order, o)
    for a, b in zip(pred.predict(x), loaded.predict(x)):
        assert torch.equal(a, b)


def test_distill_starts_from_plain_int8_activation_ranges(sharp_block, tmp_cache):
    """The QAT graph's activation fake quantizers get plain int8's calibrated statistics (node by node), so their
    scales are those plain int8's observers compute (the reference: the PTQ graph calibrated on its own)."""
    from torch.ao.quantization import FakeQuantize

    from uqcompress.compress._observers import _observers, observer_states
    from uqcompress.compress.int8_static import prepared_int8
    from uqcompress.compress.recipes import start_from_ptq

    x = _x(1, 64)
    ptq, _ = prepared_int8(sharp_block.module, "x86", (x[:2],), "fx")
    with torch.no_grad():
        ptq(x)
    qat, _ = prepared_int8(sharp_block.module, "x86", (x[:2],), "fx", recipe=["distill"])
    assert start_from_ptq(qat, observer_states(ptq)) == []
    want = {k.split(":")[0]: m.calculate_qparams() for k, m in _observers(ptq).items()}
    got = {n.args[0].name: qat.get_submodule(n.target) for n in qat.graph.nodes
           if n.op == "call_module" and isinstance(qat.get_submodule(n.target), FakeQuantize)}
    assert set(got) == set(want) and len(got) >= 3
    for name, fq in got.items():
        assert torch.allclose(fq.scale, want[name][0].float(), rtol=1e-6), name
        assert torch.equal(fq.zero_point, want[name][1].to(fq.zero_point.dtype)), name
    assert start_from_ptq(qat, {}) != []  # nothing to copy from: the caller calibrates the QAT graph itself


def _mlp():
    from uqcompress.models.base import ModelBundle

    torch.manual_seed(0)
    net = torch.nn.Sequential(torch.nn.Linear(64, 32), torch.nn.ReLU(), torch.nn.Linear(32, 3))
    with torch.no_grad():
        net[0].weight[:, 5] *= 20  # an outlier input column: the case HQQ's scale search is for
    return ModelBundle(net, "mlp", "x", "image", 3)


def test_hqq_is_torchaos_hqq_scale_search_for_cpu_int4(tmp_cache):
    """quant.recipe=[hqq] on int4_weight_only equals torchao's own IntxWeightOnlyConfig with HQQ_SCALE_ONLY (the
    reference), differs from plain int4, is keyed apart, and keeps plain int4's key unchanged."""
    import copy

    from torchao.quantization import IntxWeightOnlyConfig, MappingType, quantize_
    from torchao.quantization.granularity import PerGroup
    from torchao.quantization.quantize_.workflows.intx.intx_choose_qparams_algorithm import (
        IntxChooseQParamsAlgorithm)

    bundle, x = _mlp(), torch.randn(16, 64, generator=torch.Generator().manual_seed(1))
    plain = compress(bundle, {"name": "int4_weight_only"}, None)
    hqq = compress(bundle, {"name": "int4_weight_only", "recipe": ["hqq"]}, None)
    ref = copy.deepcopy(bundle.module).eval()
    quantize_(ref, IntxWeightOnlyConfig(weight_dtype=torch.int4, granularity=PerGroup(32),
                                        mapping_type=MappingType.ASYMMETRIC,
                                        intx_choose_qparams_algorithm=IntxChooseQParamsAlgorithm.HQQ_SCALE_ONLY))
    with torch.no_grad():
        assert torch.equal(hqq.logits(x), ref(x))
        assert not torch.equal(hqq.logits(x), plain.logits(x))
    assert hqq.fingerprint != plain.fingerprint
    assert compress(bundle, {"name": "int4_weight_only", "recipe": None}, None).fingerprint == plain.fingerprint
    assert hqq.info["recipe"] == "hqq" and hqq.info["recipe_rows"] == "none (weights only)"
    assert "recipe" not in plain.info


@pytest.mark.parametrize("quant, message", [
    ({"name": "int4_weight_only", "recipe": ["distill"]}, "recipe 'distill' does not support quant=int4_weight_only"),
    ({"name": "int8_weight_only", "recipe": ["hqq"]}, "quant=int8_weight_only has no option 'recipe'"),
    ({"name": "int8", "recipe": ["hqq"]}, "recipe 'hqq' does not support quant=int8"),
])
def test_hqq_is_refused_where_it_does_not_apply(quant, message):
    from uqcompress.validate import validate_config

    cfg = {"model": {"name": "small_cnn"}, "data": {"name": "mnist"}, "quant": quant, "seed": 0}
    with pytest.raises(ValueError, match=message):
        validate_config(cfg)
