"""Real lm-evaluation-harness output (tests/fixtures/lm_eval: SmolLM2-135M-Instruct at float32, at bfloat16 and with
4-bit round-to-nearest weights, on two local multiple-choice tasks, made by scripts/make_lm_eval_fixtures.py with
lm-eval 0.4.13 itself).

uqcompress's per-task accuracy must equal lm-eval's own ``acc`` and ``acc_norm`` (its results_*.json) exactly, and
its flips and KL must equal an independent computation straight from the samples files (plain json + numpy)."""
import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "lm_eval"
BASE = FIXTURES / "float32"
COMPS = {"bfloat16": FIXTURES / "bfloat16", "int4_rtn": FIXTURES / "int4_rtn"}
TASKS = ("uqc_emoji_movie", "uqc_hindu_knowledge")


def lm_eval_results(folder: Path) -> dict:
    (path,) = folder.glob("results_*.json")
    return json.loads(path.read_text())["results"]


def independent(task: str, comp: str) -> dict:
    """Per-question log-likelihoods, answers and option texts of both runs, read with plain json, joined by doc_id."""
    runs = []
    for folder in (BASE, COMPS[comp]):
        (path,) = folder.glob(f"samples_{task}_*.jsonl")
        runs.append({s["doc_id"]: s for s in map(json.loads, path.read_text().splitlines())})
    ids = sorted(runs[0])
    assert ids == sorted(runs[1])
    lls = [[np.array([float(r[0]) for r in run[i]["filtered_resps"]]) for i in ids] for run in runs]
    y = np.array([int(runs[0][i]["target"]) for i in ids])
    chars = [np.array([len(c) for c in runs[0][i]["doc"]["choices"]], dtype=float) for i in ids]  # the doc's own
    return {"ids": ids, "base": lls[0], "comp": lls[1], "y": y, "chars": chars}


def kl_rows(a: list[np.ndarray], b: list[np.ndarray]) -> np.ndarray:
    def log_softmax(z):
        z = z - z.max()
        return z - np.log(np.exp(z).sum())

    return np.array([np.sum(np.exp(log_softmax(x)) * (log_softmax(x) - log_softmax(z))) for x, z in zip(a, b)])


@pytest.fixture(scope="module")
def runs():
    """run_config over (float32, compressed) for each compressed run and both normalizations."""
    from uqcompress.pipeline import run_config

    out = {}
    for comp, folder in COMPS.items():
        for normalize in ("sum", "acc_norm"):
            cfg = {"outputs": {"name": "lm_eval", "baseline": str(BASE), "compressed": str(folder),
                               "normalize": normalize},
                   "progress": False, "uncertainty": {"name": "msp"}, "selector": {"name": "coverage", "target": 0.8}}
            out[comp, normalize] = run_config(cfg)
    return out


def test_fixtures_are_small_and_made_by_lm_eval():
    files = [f for f in FIXTURES.rglob("*") if f.is_file()]
    assert sum(f.stat().st_size for f in files) < 530_000  # three runs x two tasks x 50 questions: ~0.5 MB
    for folder, dtype in ((BASE, "float32"), (COMPS["bfloat16"], "bfloat16"), (COMPS["int4_rtn"], "float32")):
        (path,) = folder.glob("results_*.json")
        res = json.loads(path.read_text())
        assert res["lm_eval_version"].startswith("0.4.") and res["config"]["model_args"]["dtype"] == dtype
        assert sorted(res["results"]) == list(TASKS)
    options = {len(json.loads(line)["choices"]) for line in (FIXTURES / "tasks" / "hindu_knowledge.jsonl").open()}
    assert options == {4, 5, 6}  # questions with different numbers of options


@pytest.mark.parametrize("comp", COMPS)
@pytest.mark.parametrize("task", TASKS)
def test_accuracy_equals_lm_evals_acc_and_acc_norm_exactly(runs, task, comp):
    for normalize in ("sum", "acc_norm"):  # the whole-run keys do not depend on which scores the pipeline uses
        m = runs[comp, normalize].metrics
        for who, folder in (("baseline", BASE), ("compressed", COMPS[comp])):
            ref = lm_eval_results(folder)[task]
            assert m[f"task.{task}.{who}.accuracy"] == ref["acc,none"]
            assert m[f"task.{task}.{who}.accuracy_norm"] == ref["acc_norm,none"]
            assert m[f"task.{task}.n"] == ref["sample_len"] == 50


@pytest.mark.parametrize("comp", COMPS)
def test_pooled_accuracy_is_the_question_weighted_mean(runs, comp):
    m = runs[comp, "sum"].metrics
    for who, folder in (("baseline", BASE), ("compressed", COMPS[comp])):
        ref = lm_eval_results(folder)
        assert m[f"all.{who}.accuracy"] == pytest.approx(np.mean([ref[t]["acc,none"] for t in TASKS]), abs=1e-15)


@pytest.mark.parametrize("comp", COMPS)
@pytest.mark.parametrize("task", TASKS)
def test_flips_and_kl_equal_an_independent_computation(runs, task, comp):
    d = independent(task, comp)
    m = runs[comp, "sum"].metrics
    pb = np.array([np.argmax(v) for v in d["base"]])
    pc = np.array([np.argmax(v) for v in d["comp"]])
    ok_b, ok_c = pb == d["y"], pc == d["y"]
    assert m[f"task.{task}.baseline.accuracy"] == ok_b.mean()
    assert m[f"task.{task}.compressed.flips"] == np.mean(ok_b != ok_c)
    assert m[f"task.{task}.compressed.c2i"] == np.mean(ok_b & ~ok_c)
    assert m[f"task.{task}.compressed.all_flips"] == np.mean(pb != pc)
    kl = kl_rows(d["base"], d["comp"])
    assert m[f"task.{task}.compressed.kl"] == pytest.approx(kl.mean(), rel=1e-9)
    assert m[f"task.{task}.compressed.kl_max"] == pytest.approx(kl.max(), rel=1e-9)
    assert m[f"task.{task}.compressed.kl_median"] == pytest.approx(np.median(kl), rel=1e-9, abs=1e-15)
    assert m[f"task.{task}.compressed.kl_sem"] == pytest.approx(kl.std(ddof=1) / np.sqrt(len(kl)), rel=1e-9)
    # acc_norm: log-likelihood per character of the option text (the doc's choices, not lm-eval's continuation)
    nb = np.array([np.argmax(v / c) for v, c in zip(d["base"], d["chars"])])
    nc = np.array([np.argmax(v / c) for v, c in zip(d["comp"], d["chars"])])
    assert m[f"task.{task}.compressed.flips_norm"] == np.mean((nb == d["y"]) != (nc == d["y"]))


@pytest.mark.parametrize("normalize", ["sum", "acc_norm"])
def test_test_split_metrics_and_predictions_match_the_samples(runs, normalize):
    """The pipeline's own test-split numbers come from the same log-likelihoods (per character with acc_norm):
    recompute them from the jsonl."""
    res = runs["int4_rtn", normalize]
    pred = res.predictions
    assert list(pred.columns[:4]) == ["split", "index", "task", "doc_id"]
    per = {t: independent(t, "int4_rtn") for t in TASKS}
    if normalize == "acc_norm":
        for d in per.values():
            d["base"] = [v / c for v, c in zip(d["base"], d["chars"])]
            d["comp"] = [v / c for v, c in zip(d["comp"], d["chars"])]
    base_pred = [np.argmax(per[t]["base"][per[t]["ids"].index(d)]) for t, d in zip(pred.task, pred.doc_id)]
    comp_pred = [np.argmax(per[t]["comp"][per[t]["ids"].index(d)]) for t, d in zip(pred.task, pred.doc_id)]
    y = [per[t]["y"][per[t]["ids"].index(d)] for t, d in zip(pred.task, pred.doc_id)]
    assert pred.baseline_pred.tolist() == base_pred and pred.compressed_pred.tolist() == comp_pred
    assert pred.label.tolist() == y
    ok_b, ok_c = np.array(base_pred) == y, np.array(comp_pred) == y
    assert res.metrics["baseline.accuracy"] == pytest.approx(ok_b.mean(), abs=1e-15)
    assert res.metrics["compressed.flips"] == pytest.approx(np.mean(ok_b != ok_c), abs=1e-15)
    assert res.metrics["n_test"] + res.metrics["n_calibration"] == 100
    for t in TASKS:  # each task is in both splits (split per task)
        assert 20 <= (pred.task == t).sum() <= 30
    assert isinstance(pred, pd.DataFrame)


def test_the_4_bit_run_flips_answers():
    """The int4 fixture is there so flips are not all zero: check it against the raw files."""
    d = [independent(t, "int4_rtn") for t in TASKS]
    changed = sum(int(np.argmax(b) != np.argmax(c)) for x in d for b, c in zip(x["base"], x["comp"]))
    assert changed >= 5
