"""Issue 27: ``python -m uqcompress.tune`` resumed whatever its config, choked on a truncated tune.json and exited 0
after a sweep with failed jobs.

Before (main abf16aa): a second tune with another budget into a folder holding ``tune.json`` exited 0, leaving the
old tune.json and predictor.pt (an infeasible budget, which must exit 3, exited 0); a truncated tune.json raised
JSONDecodeError (and aborted a tune sweep); a tune sweep with a failed job exited 0. Now resume is bound to the
config's fingerprint (as the main run's), an unreadable tune.json is recomputed, and a sweep with failed jobs exits 1
with one line naming them.
"""
from __future__ import annotations

import json
import subprocess
import sys

import pytest

from fault_helpers import ROOT, env

FAST = ["limit=300", "ood.limit=100", "model.epochs=2", "model.batch_size=32", "progress=false", "plots=false",
        "threads=1", "latency.repeats=2", "tune.bootstrap=100", "tune.recipes=[none]"]
FITS = ["budget.flips=0.5"]  # int8 itself meets it: no layer search
MISSES = ["budget.kl=0", "tune.max_float_layers=1"]  # nothing meets it: exit 3


def tune(*args: str, cache, fast: list[str] = FAST) -> subprocess.CompletedProcess:
    """``python -m uqcompress.tune FAST ARGS`` in a subprocess with the cache ``cache``."""
    flags = [a for a in args if a.startswith("--")]  # Hydra's flags before the overrides
    overrides = [a for a in args if not a.startswith("--")]
    return subprocess.run([sys.executable, "-m", "uqcompress.tune", *flags, *fast, *overrides], cwd=ROOT, env=env(cache),
                          capture_output=True, text=True, timeout=900)


@pytest.fixture(scope="module")
def cache(tmp_path_factory):
    return tmp_path_factory.mktemp("tunecache")


def last(r) -> str:
    return r.stderr.strip().splitlines()[-1]


@pytest.mark.slow
def test_resume_is_bound_to_the_tune_config(cache, tmp_path):
    run = tmp_path / "run"
    first = tune(*FITS, f"hydra.run.dir={run}", cache=cache)
    assert first.returncode == 0, first.stderr[-3000:]
    old = json.loads((run / "tune.json").read_text())
    assert old["chosen"] is not None and (run / "predictor.pt").is_file()

    other = tune(*MISSES, f"hydra.run.dir={run}", cache=cache)  # another budget, same folder
    assert other.returncode == 2, other.stderr[-3000:]
    assert last(other).startswith(f"uqcompress.tune: error: {run} already holds a tune of another config")
    assert "resume=false" in last(other) and "Traceback" not in other.stderr
    assert json.loads((run / "tune.json").read_text()) == old  # untouched

    again = tune(*MISSES, "resume=false", f"hydra.run.dir={run}", cache=cache)
    assert again.returncode == 3, again.stderr[-3000:]
    assert last(again).startswith("uqcompress.tune: no candidate meets the budget")
    assert json.loads((run / "tune.json").read_text())["chosen"] is None
    assert not (run / "predictor.pt").exists() and not (run / "results.json").exists()  # none of the old tune's
    assert json.loads((run / "tune.previous.json").read_text()) == old and (run / "predictor.previous.pt").is_file()

    resumed = tune(*MISSES, f"hydra.run.dir={run}", cache=cache)  # the same config: skipped, and still exit 3
    assert resumed.returncode == 3 and "already has a tune; skipping" in resumed.stdout + resumed.stderr
    assert last(resumed).startswith("uqcompress.tune: no candidate meets the budget")

    text = (run / "tune.json").read_text()
    (run / "tune.json").write_text(text[: len(text) // 2])  # a tune killed while writing (or a full disk)
    cut = tune(*MISSES, f"hydra.run.dir={run}", cache=cache)
    assert cut.returncode == 3 and "Traceback" not in cut.stderr, cut.stderr[-3000:]
    assert "tune.json is unreadable" in cut.stdout + cut.stderr and json.loads((run / "tune.json").read_text())["chosen"] is None


@pytest.mark.slow
def test_resume_is_bound_to_the_tune_input_files(cache, tmp_path):
    """The tune's resume follows the main run's rule (uqcompress.run_files.may_resume): a checkpoint replaced in place
    under the same path is a new input, so the tune is recomputed, not skipped."""
    import torch

    from uqcompress.models import MODELS

    ck, run = tmp_path / "model.pt", tmp_path / "run"

    def save_checkpoint(seed: int) -> None:
        torch.manual_seed(seed)
        torch.save(MODELS.get("small_cnn").rebuild_architecture({}, 10, (1, 28, 28)).module.state_dict(), ck)

    save_checkpoint(0)
    args = [*FITS, "model=checkpoint", f"model.path={ck}", "model.arch=small_cnn", f"hydra.run.dir={run}"]
    fast = [a for a in FAST if not a.startswith("model.")]  # nothing to train
    first = tune(*args, cache=cache, fast=fast)
    assert first.returncode == 0, first.stderr[-3000:]
    old = json.loads((run / "tune.json").read_text())
    assert [r[0] for r in old["run.inputs"]] == [str(ck)]

    same = tune(*args, cache=cache, fast=fast)
    assert same.returncode == 0 and "already has a tune; skipping" in same.stdout + same.stderr

    save_checkpoint(1)  # other weights under the same path
    again = tune(*args, cache=cache, fast=fast)
    assert again.returncode == 0, again.stderr[-3000:]
    assert f"input file {ck} changed (size, mtime and sha256); recomputing" in again.stdout + again.stderr
    new = json.loads((run / "tune.json").read_text())
    assert json.loads((run / "tune.previous.json").read_text()) == old
    assert new["baseline"] != old["baseline"]


@pytest.mark.slow
def test_a_tune_sweep_with_a_failed_job_exits_1_and_a_truncated_tune_json_is_recomputed(cache, tmp_path):
    sweep = tmp_path / "sweep"
    job = sweep / "flips0.5"
    job.mkdir(parents=True)
    (job / "tune.json").write_text('{"budget": {"flips": 0.5}, "chosen": {"compr')  # truncated
    r = tune("--multirun", "budget.flips=-1,0.5", f"hydra.sweep.dir={sweep}", "hydra.sweep.subdir=flips${budget.flips}",
             cache=cache)
    assert r.returncode == 1, r.stderr[-3000:]
    assert last(r) == (f"uqcompress.tune: 1 of 2 sweep jobs failed in {sweep}: flips-1 (each folder's "
                       "failed.json says why)")
    assert json.loads((job / "tune.json").read_text())["chosen"] is not None
    assert "budget.flips=-1" in json.loads((sweep / "flips-1" / "failed.json").read_text())["error"]
