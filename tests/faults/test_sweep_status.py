"""Issue 16, case 14: a sweep with failed jobs ends with exit status 1 and one line listing them.

Before (main 2e17459): ``python -m uqcompress --multirun selector.target=1.5,0.9`` exited 0 (a CI pipeline could not
notice); the failure was only in the job's failed.json and the log.
"""
from __future__ import annotations

import json

import pytest

from fault_helpers import FAST, cli, copy_sweep


@pytest.mark.parametrize("launcher", [
    pytest.param([], id="basic"),
    pytest.param(["hydra/launcher=joblib", "hydra.launcher.n_jobs=2"], id="joblib", marks=pytest.mark.slow)])
def test_failed_jobs_give_a_nonzero_exit_and_one_line(launcher, finished_sweep, tmp_path):
    cache, _, _, _ = copy_sweep(finished_sweep, tmp_path)  # warm: the jobs only read the cache
    sweep = tmp_path / "new"
    r = cli("--multirun", "quant=none", "selector.target=1.5,0.8", *launcher, *FAST, f"hydra.sweep.dir={sweep}",
            cache=cache)
    assert r.returncode == 1, r.stderr[-3000:]
    (bad,) = [p.parent for p in sweep.rglob("failed.json")]
    assert "selector.target=1.5" in json.loads((bad / "failed.json").read_text())["error"]
    last = r.stderr.strip().splitlines()[-1]
    assert last == (f"uqcompress: 1 of 2 sweep jobs failed in {sweep}: {bad.relative_to(sweep)} "
                    "(each folder's failed.json says why)")
    assert len(list(sweep.rglob("results.json"))) == 1  # the sweep went on

    # a later sweep into the same folder counts its own jobs only: the old failure is not listed again
    r = cli("--multirun", "quant=none", "selector.target=0.8", *launcher, *FAST, f"hydra.sweep.dir={sweep}",
            cache=cache)
    assert r.returncode == 0, r.stderr[-3000:]
    assert "sweep jobs failed" not in r.stderr
