"""uqcompress.startup: the time from a job's start to its first inference, measured once per job."""
from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from uqcompress import startup
from uqcompress.cache import read_events, set_cache_dir
from uqcompress.models.base import ModelBundle
from uqcompress.runner import Runner


@pytest.fixture(autouse=True)
def fresh_state(monkeypatch):
    monkeypatch.setattr(startup, "_state", {"start": None, "key": None, "before": 0, "started": 0})


def test_process_age_against_a_process_that_slept():
    """Independent reference: a child process that sleeps 1.5 s before it asks its age."""
    code = "import time; time.sleep(1.5); from uqcompress.startup import process_age; print(process_age())"
    t0 = time.perf_counter()
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    wall = time.perf_counter() - t0
    age = float(out)
    assert 1.5 <= age <= wall + 0.05  # clock ticks are 10 ms; the process cannot be older than its wall time


def test_first_inference_is_recorded_once_per_job(tmp_cache):
    set_cache_dir(tmp_cache)
    startup.job_started("job-a")
    time.sleep(0.2)
    m = ModelBundle(torch.nn.Linear(4, 3), "lin", "x", "image", 3)
    Runner("cpu", batch_size=4, progress=False).logits(m, torch.zeros(10, 4), split="test")  # the first pass
    Runner("cpu", batch_size=4, progress=False).logits(m, torch.zeros(10, 4), split="test")  # not recorded again
    (ev,) = read_events(event="startup")
    assert ev["kind"] == "job" and ev["key"] == "job-a" and ev["what"] == "lin logits test"
    assert 0.2 <= ev["job_s"] < 30 and ev["jobs_before"] == 0
    assert ev["process_s"] is None or ev["process_s"] >= ev["job_s"]

    startup.job_started("job-b")  # a second job in the same (reused) process
    assert startup.first_inference("lin logits calibration")["jobs_before"] == 1
    assert [e["key"] for e in read_events(event="startup")] == ["job-a", "job-b"]
    assert startup.first_inference("again") is None and not startup.pending()


def test_outputs_served_from_the_cache_count_as_the_first_inference(tmp_cache):
    from uqcompress.data.base import Split

    set_cache_dir(tmp_cache)
    m = ModelBundle(torch.nn.Linear(4, 3), "lin", "x", "image", 3)
    split = Split(torch.rand(6, 4), torch.zeros(6, dtype=torch.long))
    Runner("cpu", 4, False).outputs(m, "calibration", split)  # computed (outside a job: nothing recorded)
    assert read_events(event="startup") == []
    startup.job_started("warm")
    Runner("cpu", 4, False).outputs(m, "calibration", split)  # a cache hit: no pass runs
    (ev,) = read_events(event="startup")
    assert ev["what"] == "lin logits calibration"
    assert [e["kind"] for e in read_events(event="compute")] == ["logits"]


#: what the embedded default (small CNN, static int8, MNIST, plots=false) never imports: other model families' and
#: schemes' libraries
NEVER = ("transformers", "torchao", "brevitas", "timm", "matplotlib")
#: nor, warm, torch's compiler stack (FX tracing pulled it in through per-node stack traces, ~2 s per job) or scipy /
#: scikit-learn; a cold run trains, and torch.optim's constructor imports torch._dynamo (and it scikit-learn)
NOT_WARM = NEVER + ("torch._dynamo", "torch._inductor", "sklearn", "scipy")


def test_embedded_default_job_logs_its_start_up_and_imports_only_what_it_needs(tmp_path):
    """A real job of the embedded default (its own cache, cold then warm) under ``python -X importtime``."""
    import os

    root = Path(__file__).resolve().parents[1]

    cache = tmp_path / "cache"
    env = {**os.environ, "PYTHONPATH": str(root), "CI": "true", "UQCOMPRESS_CACHE": str(cache)}
    args = ["limit=120", "fit_limit=120", "ood.limit=50", "model.epochs=1", "threads=1", "plots=false",
            "progress=false", "latency.repeats=1"]
    for i in range(2):  # cold (trains, calibrates int8), then warm (loads both from the cache)
        r = subprocess.run([sys.executable, "-X", "importtime", "-m", "uqcompress", *args,
                            f"hydra.run.dir={tmp_path / f'run{i}'}"], cwd=root, env=env, capture_output=True,
                           text=True, timeout=600)
        assert r.returncode == 0, r.stderr[-2000:]
        assert "start-up: first inference" in r.stdout + r.stderr
        imported = {line.rsplit("|", 1)[1].strip() for line in r.stderr.splitlines() if line.startswith("import time:")}
        assert len(imported) > 100  # the import log was read
        banned = NOT_WARM if i else NEVER
        bad = sorted(m for m in imported if m in banned or m.startswith(tuple(f"{b}." for b in banned)))
        assert not bad, (i, bad[:10])
    rows = [json.loads(line) for line in (cache / "events.jsonl").read_text().splitlines()]
    cold, warm = [e for e in rows if e["event"] == "startup"]
    assert cold["jobs_before"] == warm["jobs_before"] == 0 and warm["process_s"] > warm["job_s"] > 0
    assert [e["kind"] for e in rows if e["event"] == "compute" and e["pid"] == warm["pid"]] == []  # warm: all hits


def _imports(r: subprocess.CompletedProcess) -> set[str]:
    return {line.rsplit("|", 1)[1].strip() for line in r.stderr.splitlines() if line.startswith("import time:")}


def _banned(imported: set[str], banned: tuple[str, ...]) -> list[str]:
    return sorted(m for m in imported if m in banned or m.startswith(tuple(f"{b}." for b in banned)))


#: what a stored-outputs report (outputs=arrays, plots=false) never imports: no model is built, loaded or saved,
#: and its softmax is numpy's (scipy cost 0.2 s of its start-up)
STORED_NEVER = NEVER + ("scipy", "sklearn", "torch._dynamo", "uqcompress.predictor", "uqcompress.models.train")


def test_stored_outputs_report_imports_no_model_side(tmp_path):
    """``python -X importtime -m uqcompress outputs=arrays`` over two small .npz files, and ``import
    uqcompress.pipeline`` alone: a model run reaches its first inference without pandas (the predictions table
    imports it later)."""
    import os

    import numpy as np

    root = Path(__file__).resolve().parents[1]
    rng = np.random.default_rng(0)
    z, y = rng.normal(size=(200, 4)), rng.integers(0, 4, 200)
    np.savez(tmp_path / "b.npz", logits=z, labels=y)
    np.savez(tmp_path / "c.npz", logits=z + rng.normal(size=z.shape) * 0.3, labels=y)
    env = {**os.environ, "PYTHONPATH": str(root), "UQCOMPRESS_CACHE": str(tmp_path / "cache")}
    r = subprocess.run([sys.executable, "-X", "importtime", "-m", "uqcompress", "outputs=arrays",
                        f"outputs.baseline={tmp_path / 'b.npz'}", f"outputs.compressed={tmp_path / 'c.npz'}",
                        "plots=false", "progress=false", "bootstrap=0", f"hydra.run.dir={tmp_path / 'run'}"],
                       cwd=root, env=env, capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr[-2000:]
    assert (tmp_path / "run" / "results.json").is_file()
    imported = _imports(r)
    assert len(imported) > 100 and "torch" in imported  # the import log was read
    assert not _banned(imported, STORED_NEVER), _banned(imported, STORED_NEVER)[:10]
    r = subprocess.run([sys.executable, "-X", "importtime", "-c", "import uqcompress.pipeline"], cwd=root, env=env,
                       capture_output=True, text=True, timeout=300)
    assert r.returncode == 0 and "uqcompress.pipeline" in _imports(r)
    assert not _banned(_imports(r), STORED_NEVER + ("pandas",))
