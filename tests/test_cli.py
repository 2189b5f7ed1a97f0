"""The Hydra app end to end on a small slice of the embedded default (real MNIST + animal silhouettes)."""
import json

import pandas as pd
import pytest


FAST = ["limit=300", "ood.limit=200", "model.epochs=6", "model.batch_size=32", "progress=false", "latency.repeats=2"]
KEYS = ["baseline.accuracy", "compressed.accuracy", "compressed.flips", "compressed.c2i", "compressed.i2c",
        "compressed.kl", "compressed.coverage", "compressed.saved_rate", "compressed.ood_auroc", "compressed.ece",
        "compressed.aurc", "baseline.model_size_bytes", "compressed.model_size_bytes",
        "baseline.latency_ms_per_sample", "compressed.latency_ms_per_sample", "baseline.ood_auroc"]


@pytest.mark.slow
def test_default_run_writes_results_and_predictions(cli, tmp_path):
    out = tmp_path / "run"
    r = cli(*FAST, f"hydra.run.dir={out}")
    assert r.returncode == 0, r.stderr[-3000:]
    res = json.loads((out / "results.json").read_text())
    for k in KEYS:
        assert k in res, k
    assert 0.5 < res["baseline.accuracy"] <= 1.0
    assert res["compressed.model_size_bytes"] < 0.3 * res["baseline.model_size_bytes"]
    assert res["config.quant"] == "int8" and res["n_test"] == 300 and res["n_ood"] == 200
    pred = pd.read_csv(out / "predictions.csv")
    assert set(pred.split) == {"test", "ood"}
    assert (pred.split == "test").sum() == 300 and (pred.split == "ood").sum() == 200
    assert set(pred.columns) >= {"split", "label", "baseline_pred", "compressed_pred", "baseline_confidence",
                                 "compressed_confidence", "baseline_accepted", "compressed_accepted"}
    # the table reached the terminal
    assert "OOD AUROC" in r.stdout and "flips" in r.stdout


@pytest.mark.slow
def test_multirun_gives_one_dir_per_scheme(cli, tmp_path):
    r = cli("--multirun", "quant=none,int8", *FAST, f"hydra.sweep.dir={tmp_path}")
    assert r.returncode == 0, r.stderr[-3000:]
    results = sorted(tmp_path.rglob("results.json"))
    assert len(results) == 2
    quants = {json.loads(p.read_text())["config.quant"] for p in results}
    assert quants == {"none", "int8"}
    none = next(json.loads(p.read_text()) for p in results if "none" in str(p))
    assert none["compressed.flips"] == 0 and none["compressed.kl"] == pytest.approx(0, abs=1e-12)


def test_unknown_config_name_lists_choices(cli):
    r = cli("model=resnet5000")
    assert r.returncode != 0
    assert "small_cnn" in r.stderr  # Hydra lists the available options of the group


def test_unknown_registered_name_is_one_line(cli, tmp_path):
    r = cli("model.name=nope", *FAST, f"hydra.run.dir={tmp_path}")
    assert r.returncode == 2
    assert r.stderr.strip().splitlines()[-1].startswith("uqcompress: error: unknown model 'nope'; choose one of:")
    assert not (tmp_path / "results.json").exists()
