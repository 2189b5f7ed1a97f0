"""python -m uqcompress outputs=lm_eval | arrays: results.json, predictions.csv, refusals, sweeps and the report."""
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from lm_eval_synth import make_pair, write_run

import uqcompress

ERR = "uqcompress: error: "


def _results(run_dir):
    return json.loads((run_dir / "results.json").read_text())


@pytest.fixture(scope="module")
def synth(tmp_path_factory):
    root = tmp_path_factory.mktemp("lm_eval")
    b, c, tasks, lb, lc = make_pair(root, {"arc_like": 120, "mmlu_like": 80}, options=(2, 3, 4, 5))
    return b.parent, c.parent, tasks, lb, lc


def test_lm_eval_run_writes_whole_run_keys_and_no_model_facts(cli, synth, tmp_path):
    b, c, tasks, lb, lc = synth
    r = cli("outputs=lm_eval", f"outputs.baseline={b}", f"outputs.compressed={c}", "progress=false", "plots=false",
            f"hydra.run.dir={tmp_path}")
    assert r.returncode == 0, r.stderr[-2000:]
    assert "model, quant, data and ood settings are not used" in r.stdout + r.stderr
    assert "every question (calibration + test)" in r.stdout
    res = _results(tmp_path)
    assert res["config.outputs"] == "lm_eval" and res["outputs.tasks"] == ["arc_like", "mmlu_like"]
    assert not [k for k in res if "latency" in k or "model_size" in k or "speedup" in k or k.endswith(".device")]
    assert "config.model" not in res and "config.quant" not in res
    for t in tasks:  # plain numpy from the generated log-likelihoods
        y = np.array([q["answer"] for q in tasks[t]])
        ok_b = np.array([np.argmax(v) for v in lb[t]]) == y
        ok_c = np.array([np.argmax(v) for v in lc[t]]) == y
        assert res[f"task.{t}.baseline.accuracy"] == ok_b.mean()
        assert res[f"task.{t}.compressed.accuracy"] == ok_c.mean()
        assert res[f"task.{t}.compressed.flips"] == np.mean(ok_b != ok_c)
        assert res[f"task.{t}.n"] == len(y)
    assert res["all.n"] == 200 == res["n_test"] + res["n_calibration"]
    for k in ("compressed.kl_sem", "compressed.kl_median", "compressed.kl_p90", "compressed.kl_p95",
              "compressed.kl_p99", "compressed.kl_p999", "compressed.kl_max", "all.compressed.kl_p99"):
        assert isinstance(res[k], float), k
    pred = pd.read_csv(tmp_path / "predictions.csv")
    assert list(pred.columns[:4]) == ["split", "index", "task", "doc_id"] and len(pred) == res["n_test"]
    key = pred.set_index(["task", "doc_id"])
    for t in tasks:  # each row names its question, and its label is that question's answer
        for d in key.loc[t].index[:5]:
            assert key.loc[(t, d), "label"] == tasks[t][d]["answer"]


def test_a_scorer_that_needs_the_model_is_refused_in_one_line(cli, tmp_path):
    # the paths do not exist: the refusal comes first, before any file is read
    r = cli("outputs=lm_eval", "outputs.baseline=/nonexistent/a", "outputs.compressed=/nonexistent/b",
            "uncertainty=mc_dropout", "progress=false", f"hydra.run.dir={tmp_path}")
    assert r.returncode == 2
    lines = [ln for ln in r.stderr.splitlines() if ln.startswith(ERR)]
    assert len(lines) == 1 and lines[0].startswith(f"{ERR}uncertainty=mc_dropout needs the model (MC-dropout passes)")


@pytest.mark.parametrize("group,name,what", [("uncertainty", "mahalanobis", "penultimate features"),
                                             ("uncertainty", "knn", "penultimate features"),
                                             ("selector", "mc_interval", "MC-dropout passes")])
def test_every_model_needing_choice_is_refused_before_reading(group, name, what):
    from uqcompress.pipeline import run_config

    cfg = {"outputs": {"name": "arrays", "baseline": "/nonexistent/a.npz", "compressed": "/nonexistent/b.npz"},
           group: {"name": name}, "progress": False}
    with pytest.raises(ValueError, match=rf"^{group}={name} needs the model \({what}\)"):
        run_config(cfg)
    cfg = {"outputs": {"name": "arrays", "baseline": "/x.npz", "compressed": "/y.npz"}, "progress": False,
           "deploy": {"export": "p.pt"}}
    with pytest.raises(ValueError, match=r"^deploy.export needs a model, but outputs=arrays holds only stored outputs"):
        run_config(cfg)


def test_one_line_errors_from_the_cli(cli, synth, tmp_path):
    b, c, *_ = synth
    r = cli("outputs=lm_eval", f"outputs.baseline={tmp_path / 'missing'}", f"outputs.compressed={c}",
            "progress=false", f"hydra.run.dir={tmp_path / 'run'}")
    assert r.returncode == 2 and f"{ERR}outputs.baseline: path '{tmp_path / 'missing'}' does not exist" in r.stderr
    assert "Traceback" not in r.stderr


@pytest.mark.slow
def test_sweep_over_compressed_runs_and_scorers_then_the_report(cli, synth, tmp_path):
    b, c, tasks, lb, lc = synth
    rng = np.random.default_rng(5)  # a second compressed run of the same questions, further from the baseline
    c2 = write_run(c.parent.parent / "int4", tasks, {t: [v + rng.normal(size=len(v)) for v in lb[t]] for t in tasks})
    r = cli("--multirun", "outputs=lm_eval", f"outputs.baseline={b}", f"outputs.compressed={c},{c2.parent}",
            "progress=false", "plots=false", "uncertainty=msp,entropy", "sweep_name=byo", cwd=tmp_path)
    assert r.returncode == 0, r.stderr[-2000:]
    from uqcompress.report.summary import find_runs, summarize

    summary, failed = summarize(find_runs([tmp_path / "multirun" / "byo"]), n_boot=50)
    assert len(failed) == 0
    assert sorted(summary["label"]) == [f"outputs.compressed={c}, uncertainty={u}" for c in ("comp", "int4")
                                        for u in ("entropy", "msp")]  # labels: the shortest telling path parts
    flips = summary.groupby("config.outputs.compressed")["compressed.flips"]
    assert flips.nunique().tolist() == [1, 1]  # the same stored outputs whatever the scorer
    first = {Path(k).name: v for k, v in flips.first().items()}
    assert first["int4"] > first["comp"]
    env = {**os.environ, "PYTHONPATH": str(Path(uqcompress.__file__).parents[1])}
    rep = subprocess.run([sys.executable, "-m", "uqcompress.report", str(tmp_path / "multirun" / "byo")],
                         capture_output=True, text=True, env=env)
    assert rep.returncode == 0, rep.stderr[-1000:]
    report = tmp_path / "multirun" / "byo" / "report"
    md = (report / "summary.md").read_text()
    assert "outputs.compressed=int4, uncertainty=msp" in md and (report / "flips_vs_kl.png").is_file()


def test_arrays_cli_equals_the_python_door(cli, tmp_path):
    rng = np.random.default_rng(1)
    z = rng.normal(size=(300, 6)) * 2
    y = z.argmax(1)
    y[:60] = rng.integers(0, 6, 60)
    zc = z + rng.normal(size=z.shape) * 0.4
    split = np.array(["calibration", "test", "test", "ood"] * 75)
    labels = np.where(split == "ood", -1, y)
    np.savez(tmp_path / "b.npz", logits=z, labels=labels, split=split)
    np.savez(tmp_path / "c.npz", logits=zc, labels=labels, split=split)
    r = cli("outputs=arrays", f"outputs.baseline={tmp_path / 'b.npz'}", f"outputs.compressed={tmp_path / 'c.npz'}",
            "uncertainty=energy", "uncertainty.temperature=true", "progress=false", "plots=false",
            f"hydra.run.dir={tmp_path / 'run'}")
    assert r.returncode == 0, r.stderr[-2000:]
    res = _results(tmp_path / "run")
    ind = split != "ood"
    py = uqcompress.evaluate_outputs(z[ind], zc[ind], y[ind], split=split[ind], ood_baseline=z[~ind],
                                     ood_compressed=zc[~ind], uncertainty={"name": "energy", "temperature": True})
    for k in ("baseline.accuracy", "compressed.flips", "compressed.kl", "compressed.kl_p99", "compressed.ood_auroc",
              "compressed.temperature", "compressed.saved_rate", "all.compressed.flips", "n_ood"):
        assert res[k] == pytest.approx(py.metrics[k], rel=1e-12, abs=0), k
    assert res["n_ood"] == 75 and res["config.outputs"] == "arrays"
