"""``python -m uqcompress.tune``: one-line errors before any model work, and a tiny end-to-end tune on the embedded
default (tune.json, the chosen model's results.json keys, its predictor, a rerun that evaluates only what is new)."""
from __future__ import annotations

import json
from pathlib import Path

import pytest

TINY = ["limit=300", "fit_limit=300", "ood.limit=100", "model.epochs=6", "model.batch_size=32", "progress=false",
        "latency.repeats=2", "tune.recipes=[none]", "tune.bootstrap=200"]  # the layer search (recipes: their own test)


@pytest.fixture
def tune(cli):
    """``tune(*overrides)`` runs ``python -m uqcompress.tune`` in a subprocess."""
    return lambda *args: cli(*args, module="uqcompress.tune", timeout=900)


@pytest.mark.parametrize("args, message", [
    (["budget.flip=0.03"], "unknown budget key(s) ['flip']; budget keys: flips, kl, accuracy_drop, risk, coverage, "
                           "delta"),
    (["tune.schemes=[int8,int9]", "budget.flips=0.03"], "unknown quant 'int9'; choose one of: "),
    ([], "the budget is empty: set at least one of budget.flips"),
])
def test_bad_input_is_one_line_before_any_model_work(tune, args, message, tmp_path):
    """Hydra-level (an unknown budget key), plan-level (an unknown scheme) and budget-level errors; the others
    take the same path (tests/tune/test_options.py)."""
    cache = tmp_path / "cache"
    r = tune(*args, *TINY, f"cache_dir={cache}", f"hydra.run.dir={tmp_path / 'run'}")
    assert r.returncode == 2, r.stderr[-2000:]
    lines = [line for line in r.stderr.strip().splitlines() if line.strip()]
    assert lines[-1].startswith(f"uqcompress.tune: error: {message}"), lines[-1]
    assert not (tmp_path / "run" / "tune.json").exists()
    assert not (cache / "events.jsonl").exists() and not (cache / "models").exists()  # nothing ran, nothing trained


def _events(cache: Path) -> list[dict]:
    path = cache / "events.jsonl"
    return [json.loads(line) for line in path.read_text().splitlines()] if path.is_file() else []


def _evaluations(rows: list[dict]) -> set[tuple[str, str]]:
    return {(r["kind"], r["key"]) for r in rows if r["kind"] in ("logits", "calibration")}


_TUNED: dict[str, tuple] = {}


@pytest.fixture
def tuned(tune, tmp_path_factory):
    """One tiny tune shared by the tests below (budget.kl=2e-4: the int8 CNN's calibration KL is ~4e-4, so layers
    must be kept float)."""
    if "run" in _TUNED:
        return _TUNED["run"]
    root = tmp_path_factory.mktemp("tune")
    cache, run = root / "cache", root / "run"
    r = tune(*TINY, "budget.kl=0.0002", f"cache_dir={cache}", f"hydra.run.dir={run}")
    assert r.returncode == 0, r.stderr[-3000:]
    _TUNED["run"] = (root, cache, run, _events(cache))
    return _TUNED["run"]


@pytest.mark.slow
def test_tune_writes_the_run_folder(tuned):
    root, cache, run, events = tuned
    t = json.loads((run / "tune.json").read_text())
    assert t["budget"]["kl"] == 0.0002 and t["tune"]["schemes"] == ["int8"]
    chosen = t["chosen"]
    assert chosen is not None and t["chosen_name"]
    assert chosen["compressed.kl"] is not None
    lo, hi = chosen["compressed.flips_ci95"]
    assert lo <= chosen["compressed.flips"] <= hi
    assert chosen["compressed.fp32_layers"] and isinstance(chosen["compressed.fp32_layers"], list)
    int8 = next(c for c in t["candidates"] if c["name"] == "int8")
    assert not int8["meets_budget_calibration"] and int8["calibration"]["kl"] > 0.0002
    best = next(c for c in t["candidates"] if c["chosen"])
    assert best["meets_budget_calibration"] and best["calibration"]["kl"] <= 0.0002
    assert best["fp32_layers"] == chosen["compressed.fp32_layers"]
    assert all(c["test"] is not None for c in t["candidates"])  # every candidate confirmed on test
    assert any("control" in c["role"] for c in t["candidates"])
    s = t["searches"][0]
    assert set(s["walks"]) == {"revert", "alone"} and s["better_ranking"] in s["walks"]
    assert sorted(s["ranking"]["orders"]["revert"]) == sorted(s["ranking"]["layers"])
    k = s["walks"][s["better_ranking"]]["k"]
    assert len(best["fp32_layers"]) <= max(k, 1) or best["ranking"] != s["better_ranking"]
    # the evaluations it reports are the passes it logged
    mine = [e for e in events if e["kind"] in ("logits", "calibration")]
    assert t["evaluations"]["logits"] + t["evaluations"].get("calibration", 0) == len(mine)
    for name in ("tune.csv", "tune_pareto.png", "results.json", "predictions.csv", "predictor.pt"):
        assert (run / name).is_file(), name


@pytest.mark.slow
def test_chosen_keys_equal_a_plain_run_of_the_chosen_model(tuned, cli, tmp_path):
    """tune.json's ``chosen`` has results.json's keys (plus the flips interval), and a plain
    ``python -m uqcompress`` run of the chosen config gives the same numbers, from the cache."""
    root, cache, run, _ = tuned
    t = json.loads((run / "tune.json").read_text())
    chosen = t["chosen"]
    own = json.loads((run / "results.json").read_text())
    assert set(own) - {"run.predictions_sha256"} == set(chosen)  # the sha binds results.json to predictions.csv
    assert chosen["run.command"].startswith("python -m uqcompress ") and "quant=int8" in chosen["run.command"]
    layers = ",".join(chosen["compressed.fp32_layers"])
    before = len(_events(cache))
    r = cli(*TINY[:-2], "quant=int8", f"quant.skip=[{layers}]", f"deploy.export={tmp_path / 'p.pt'}",
                f"cache_dir={cache}", f"hydra.run.dir={tmp_path / 'plain'}")
    assert r.returncode == 0, r.stderr[-3000:]
    plain = json.loads((tmp_path / "plain" / "results.json").read_text())
    assert set(chosen) - {"compressed.flips_ci95"} | {"run.predictions_sha256"} == set(plain)
    for key in ("compressed.flips", "compressed.kl", "compressed.accuracy", "baseline.accuracy",
                "compressed.model_size_bytes", "compressed.coverage", "compressed.ood_auroc"):
        assert plain[key] == pytest.approx(chosen[key]), key
    assert not _evaluations(_events(cache)[before:])  # nothing recomputed


@pytest.mark.slow
def test_predictor_of_the_chosen_model_loads(tuned):
    import torch

    from uqcompress import SelectivePredictor

    _, _, run, _ = tuned
    chosen = json.loads((run / "tune.json").read_text())["chosen"]
    p = SelectivePredictor.load(run / "predictor.pt")
    labels, conf, accepted = p.predict(torch.rand(4, 1, 28, 28))
    assert labels.shape == (4,) and p.spec["quant"]["skip"] == chosen["compressed.fp32_layers"]


@pytest.mark.slow
def test_rerun_with_a_tighter_budget_evaluates_only_new_models(tune, tuned, tmp_path):
    """A second tune with a tighter budget, in the same cache: no pass of the first run is repeated, no calibration
    pass at all (every quant.skip variant reuses the one recorded), and a third run with the first budget again
    evaluates nothing."""
    root, cache, run, first = tuned
    seen = _evaluations(first)
    # tighter than what the first run's chosen model reached on calibration (measured: its first walk step already
    # met budget.kl=1e-4 as well as 2e-4, so a fixed 1e-4 asked for nothing new), so the walk must go further
    t1 = json.loads((run / "tune.json").read_text())
    reached = next(c["calibration"]["kl"] for c in t1["candidates"] if c["chosen"])
    start = len(_events(cache))
    r = tune(*TINY, f"budget.kl={reached / 2:.3g}", f"cache_dir={cache}", f"hydra.run.dir={tmp_path / 'tighter'}")
    assert r.returncode in (0, 3), r.stderr[-3000:]
    second = _events(cache)[start:]
    new = _evaluations(second)
    assert new and not (new & seen)
    assert not [e for e in second if e["kind"] == "calibration"]
    t2 = json.loads((tmp_path / "tighter" / "tune.json").read_text())
    assert t2["evaluations"].get("logits", 0) == sum(e["kind"] == "logits" for e in second)
    start = len(_events(cache))
    r = tune(*TINY, "budget.kl=0.0002", "tune.export=false", f"cache_dir={cache}",
             f"hydra.run.dir={tmp_path / 'again'}")
    assert r.returncode == 0, r.stderr[-3000:]
    assert not _evaluations(_events(cache)[start:])


@pytest.mark.slow
def test_no_candidate_says_so_in_one_line_and_exports_nothing(tune, tuned, tmp_path):
    """budget.kl=0 cannot hold with one layer float at most (tune.max_float_layers=1): exit 3, one line naming the
    closest candidate and the term it misses, tune.json with chosen null, no predictor."""
    _, cache, _, _ = tuned
    out = tmp_path / "none"
    r = tune(*TINY, "budget.kl=0", "tune.max_float_layers=1", f"cache_dir={cache}", f"hydra.run.dir={out}")
    assert r.returncode == 3, r.stderr[-3000:]
    last = r.stderr.strip().splitlines()[-1]
    assert last.startswith("uqcompress.tune: no candidate meets the budget") and "misses kl" in last
    t = json.loads((out / "tune.json").read_text())
    assert t["chosen"] is None and t["closest"]["misses"].startswith("kl ")
    assert not (out / "predictor.pt").exists() and not (out / "results.json").exists()


@pytest.mark.slow
def test_risk_and_coverage_budget_uses_a_risk_selector(tune, tuned, tmp_path):
    """budget.risk + budget.coverage: every evaluation uses a selector at that risk target (risk_guarantee when
    registered, else risk); coverage is measured on calibration and confirmed on test."""
    _, cache, _, _ = tuned
    out = tmp_path / "risk"
    r = tune(*TINY, "budget.risk=0.1", "budget.coverage=0.5", "tune.export=false", f"cache_dir={cache}",
             f"hydra.run.dir={out}")
    assert r.returncode == 0, r.stderr[-3000:]
    t = json.loads((out / "tune.json").read_text())
    assert t["selector"]["name"] in ("risk", "risk_guarantee") and t["selector"]["target"] == 0.1
    assert t["chosen"]["config.selector"] == t["selector"]["name"]
    best = next(c for c in t["candidates"] if c["chosen"])
    assert best["calibration"]["coverage"] >= 0.5 and best["test"]["compressed.coverage"] is not None
    assert not (out / "predictor.pt").exists()  # tune.export=false


@pytest.mark.slow
def test_recipes_are_candidates_before_any_layer_is_kept_float(tune, tuned, cli, tmp_path):
    """tune.recipes: each chain the scheme takes is a scheme candidate of its own (size, flips, KL, its cost in
    seconds), measured before the layer search; the plain int8 pass comes from the first tune's cache."""
    root, cache, run, _ = tuned
    out = tmp_path / "recipes"
    r = tune(*TINY[:-2], "tune.bootstrap=200", "tune.recipes=[none,bias_correction,minmax]", "budget.kl=0.0002",
             "tune.export=false", f"cache_dir={cache}", f"hydra.run.dir={out}")
    assert r.returncode in (0, 3), r.stderr[-3000:]
    t = json.loads((out / "tune.json").read_text())
    schemes = {c["name"]: c for c in t["candidates"] if "scheme" in c["role"].split("+")}
    assert set(schemes) == {"int8", "int8+bias_correction", "int8+minmax"}  # the CNN runs in FX mode: all apply
    fixed = schemes["int8+bias_correction"]
    assert fixed["quant"]["recipe"] == ["bias_correction"] and fixed["test"]["compressed.recipe_seconds"] > 0
    assert schemes["int8"]["test"].get("compressed.recipe_seconds") is None
    assert fixed["size_bytes"] == schemes["int8"]["size_bytes"]  # a recipe changes values, not the format
    # the bias correction lowers the calibration KL it was fitted on (the rows it saw: calibration only)
    assert fixed["calibration"]["kl"] < schemes["int8"]["calibration"]["kl"]
    table = (out / "tune.csv").read_text().splitlines()
    assert "recipe_s" in table[0] and any(line.split(",")[1] == "int8+bias_correction" for line in table[1:])
    if t["chosen"] is not None and t["chosen_name"].startswith("int8+"):
        assert "quant.recipe=[" in t["chosen"]["run.command"]
