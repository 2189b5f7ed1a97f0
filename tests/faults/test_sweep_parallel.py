"""Issue 16, case 9 (done-when): a 4x2 joblib sweep with n_jobs=2 on a cold cache does exactly as many inference
passes as the same sweep run sequentially, counted from ``events.jsonl``.

Before (main 2e17459): 21 inference passes instead of 12 (parallel jobs missed each other's entries and recomputed
them; the CNN was trained and int8 calibrated more than once).
"""
from __future__ import annotations

from collections import Counter

import pytest

from fault_helpers import FAST, cli, events

SWEEP = ["quant=none,int8,int8_dynamic,prune_global_l1", "uncertainty=msp,entropy"]


def _work(cache) -> Counter:
    return Counter(e["kind"] for e in events(cache))


@pytest.mark.slow
def test_parallel_sweep_repeats_no_work(tmp_path):
    fast = [a for a in FAST if not a.startswith("model.epochs")] + ["model.epochs=1"]
    runs = {}
    for name, launcher in [("sequential", []), ("joblib", ["hydra/launcher=joblib", "hydra.launcher.n_jobs=2"])]:
        cache = tmp_path / f"cache_{name}"
        r = cli("--multirun", *SWEEP, *launcher, *fast, f"hydra.sweep.dir={tmp_path / name}", cache=cache)
        assert r.returncode == 0, r.stderr[-3000:]
        assert len(list((tmp_path / name).rglob("results.json"))) == 8
        runs[name] = _work(cache)
        passes = Counter((e["model"], e["split"]) for e in events(cache, "logits"))
        # the baseline (= quant=none) and each of the 3 schemes, once over each of calibration/test/ood
        assert len(passes) == 12 and set(passes.values()) == {1}, (name, passes)
    assert "Joblib.Parallel(n_jobs=2" in r.stdout + r.stderr
    assert runs["joblib"] == runs["sequential"], runs
    assert runs["joblib"]["logits"] == 12
    assert runs["joblib"]["models/small_cnn"] == 1 and runs["joblib"]["compressed/int8"] == 1
