"""Issue 27 cases 6 and 8: resume is bound to the files a run read and the file it exported, not only to its config.

Before (main abf16aa): after an input file changed in place (an ``outputs=arrays`` npz, a ``model=checkpoint`` file)
the rerun skipped ("already has results") and kept the old numbers; a deleted ``deploy.export`` file was not written
again on a resumed run. Now results.json records each input file (size, mtime, sha256) and the export's sha256, and
a resume recomputes when one changed (a ``touch`` alone still resumes).
"""
from __future__ import annotations

import json
import os
import subprocess
import sys

import numpy as np
import pytest
import torch

from fault_helpers import FAST, ROOT, cli, env, numbers


def run(*args: str, cache=None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "uqcompress", "progress=false", "plots=false", *args], cwd=ROOT,
                          env=env(cache), capture_output=True, text=True, timeout=600)


def log(r) -> str:
    return r.stdout + r.stderr


def arrays(path, seed: int, y, split):
    z = np.random.default_rng(seed).normal(size=(len(y), 5)) * 2
    np.savez(path, logits=z, labels=y, split=split)
    return z


def test_an_outputs_file_changed_in_place_is_recomputed_and_a_touch_is_not(tmp_path):
    rng = np.random.default_rng(0)
    y = rng.integers(0, 5, 400)
    split = np.array(["calibration", "test"] * 200)
    zb = arrays(tmp_path / "b.npz", 1, y, split)
    arrays(tmp_path / "c.npz", 2, y, split)
    args = ["outputs=arrays", f"outputs.baseline={tmp_path / 'b.npz'}", f"outputs.compressed={tmp_path / 'c.npz'}",
            f"hydra.run.dir={tmp_path / 'run'}"]
    first = run(*args)
    assert first.returncode == 0, first.stderr[-2000:]
    old = json.loads((tmp_path / "run" / "results.json").read_text())

    zc = arrays(tmp_path / "c.npz", 3, y, split)  # the compressed model's outputs, replaced in place
    again = run(*args)
    assert again.returncode == 0, again.stderr[-2000:]
    assert f"input file {tmp_path / 'c.npz'} changed (size, mtime and sha256); recomputing" in log(again)
    new = json.loads((tmp_path / "run" / "results.json").read_text())
    test = split == "test"  # flips by hand: correctness changed between the two models on the test rows
    flips = np.mean((zb[test].argmax(1) == y[test]) != (zc[test].argmax(1) == y[test]))
    assert new["compressed.flips"] == pytest.approx(flips, abs=1e-12) != old["compressed.flips"]
    assert json.loads((tmp_path / "run" / "results.previous.json").read_text()) == old

    os.utime(tmp_path / "c.npz")  # a new mtime, the same bytes: still the same input
    touched = run(*args)
    assert touched.returncode == 0 and "already has results; skipping" in log(touched)
    assert json.loads((tmp_path / "run" / "results.json").read_text()) == new


@pytest.mark.slow
def test_a_checkpoint_changed_in_place_and_a_deleted_export_are_redone(tmp_path):
    from uqcompress.models import MODELS

    cache, ck, export = tmp_path / "cache", tmp_path / "model.pt", tmp_path / "pred.pt"

    def save_checkpoint(seed: int) -> None:
        torch.manual_seed(seed)
        torch.save(MODELS.get("small_cnn").rebuild_architecture({}, 10, (1, 28, 28)).module.state_dict(), ck)

    save_checkpoint(0)
    fast = [a for a in FAST if not a.startswith("model.")]  # nothing to train
    args = [*fast, "model=checkpoint", f"model.path={ck}", "model.arch=small_cnn", "quant=int8",
            f"deploy.export={export}", f"hydra.run.dir={tmp_path / 'run'}"]
    first = cli(*args, cache=cache)
    assert first.returncode == 0, first.stderr[-3000:]
    before = numbers(tmp_path / "run")
    assert export.is_file()

    export.unlink()  # case 8: the export is gone; a resume must write it again
    second = cli(*args, cache=cache)
    assert second.returncode == 0, second.stderr[-3000:]
    assert f"its deploy.export file {export} is missing; recomputing" in log(second)
    assert export.is_file() and numbers(tmp_path / "run") == before

    save_checkpoint(1)  # case 6: other weights under the same path
    third = cli(*args, cache=cache)
    assert third.returncode == 0, third.stderr[-3000:]
    assert f"input file {ck} changed (size, mtime and sha256); recomputing" in log(third)
    after = numbers(tmp_path / "run")
    fresh = tmp_path / "fresh"  # the reference: the same config in a new folder, nothing to resume
    ref = cli(*[a for a in args if not a.startswith("hydra.run.dir")], f"hydra.run.dir={fresh}", cache=cache)
    assert ref.returncode == 0, ref.stderr[-3000:]
    assert after == numbers(fresh) and after["baseline.accuracy"] != before["baseline.accuracy"]
