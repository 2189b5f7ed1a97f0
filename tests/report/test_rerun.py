"""results.json round-trips its overrides: ``python -m uqcompress <run.overrides>`` reruns the same job to the same
numbers, from a fresh cache (the CNN is trained again, the scheme applied again)."""
import json
import os
import subprocess
import sys

from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]

ARGS = ["limit=300", "fit_limit=300", "ood.limit=200", "model.epochs=4", "model.batch_size=32", "threads=1",
        "progress=false", "latency.repeats=2", "plots=false", "quant=prune_global_l1", "quant.amount=0.5",
        "selector.target=0.85", "bootstrap=200", "uncertainty=entropy"]
#: what may differ between two runs of the same config: wall-clock time and where it was measured, and the default
#: sweep folder name (<date>/<time> of the launch; it changes no number)
VOLATILE = ("run.started_at", "run.duration_s", "latency", "speedup", "cascade.cost", "config.sweep_name")


@pytest.mark.slow
def test_rerunning_the_recorded_overrides_gives_the_same_results(cli, tmp_path):
    first = cli(*ARGS, f"hydra.run.dir={tmp_path / 'a'}")
    assert first.returncode == 0, first.stderr[-3000:]
    a = json.loads((tmp_path / "a" / "results.json").read_text())
    assert a["run.overrides"] == ARGS  # hydra.run.dir is Hydra's own override, not the job's
    assert a["config.quant.amount"] == 0.5 and a["config.selector.target"] == 0.85 and a["config.bootstrap"] == 200
    env = {**os.environ, "PYTHONPATH": str(ROOT), "CI": "true", "UQCOMPRESS_CACHE": str(tmp_path / "fresh")}
    again = subprocess.run([sys.executable, "-m", "uqcompress", *a["run.overrides"],
                            f"hydra.run.dir={tmp_path / 'b'}"], cwd=ROOT, env=env, capture_output=True, text=True,
                           timeout=600)
    assert again.returncode == 0, again.stderr[-3000:]
    assert "training small_cnn" in again.stdout + again.stderr  # really recomputed, not read from a cache
    b = json.loads((tmp_path / "b" / "results.json").read_text())
    differ = sorted(k for k in set(a) | set(b) if a.get(k) != b.get(k))
    assert [k for k in differ if not any(v in k for v in VOLATILE)] == []
    assert b["run.command"] == a["run.command"] == "python -m uqcompress " + " ".join(ARGS)
    assert any(k.endswith("_ci_low") for k in a) and a["compressed.flips"] > 0
