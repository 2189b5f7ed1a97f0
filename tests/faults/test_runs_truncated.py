"""Issue 16, case 5: a truncated ``results.json`` in a sweep.

Before (main 2e17459): the rerun of the sweep died with ``JSONDecodeError`` (exit 1) and the job was never redone;
``python -m uqcompress.report`` stopped with "error: Unterminated string starting at: line 4 column 3 (char 87)",
naming no file.
"""
from __future__ import annotations

import json
import subprocess
import sys

import pandas as pd
import pytest

from fault_helpers import ROOT, cli, copy_sweep, env, numbers


def report(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "uqcompress.report", *args], cwd=ROOT, env=env(),
                          capture_output=True, text=True)


@pytest.mark.slow
def test_truncated_results_are_listed_by_the_report_and_redone_by_the_sweep(finished_sweep, tmp_path):
    cache, sweep, args, jobs = copy_sweep(finished_sweep, tmp_path)
    clean = numbers(jobs["int8"])
    path = jobs["int8"] / "results.json"
    path.write_bytes(path.read_bytes()[:100])  # a job killed mid-write on a file system without atomic rename

    rep = report(str(sweep), "--n-boot", "20")
    assert rep.returncode == 0, rep.stderr
    bad = [line for line in rep.stderr.splitlines() if str(path) in line]
    assert len(bad) == 1 and "unreadable" in bad[0] and "listed as failed" in bad[0], rep.stderr
    assert "Traceback" not in rep.stderr
    summary = pd.read_csv(sweep / "report" / "summary.csv")
    assert list(summary["config.quant"]) == ["none"]  # the rest is still reported
    md = (sweep / "report" / "summary.md").read_text()
    assert "## Failed jobs" in md and str(path) in md

    again = cli(*args, cache=cache)
    assert again.returncode == 0, again.stderr[-2000:]
    out = again.stdout + again.stderr
    assert out.count("already has results; skipping") == 1  # the intact job
    assert f"resume: {path} is unreadable" in out and "Traceback" not in out
    assert numbers(jobs["int8"]) == clean  # redone, to the same numbers
    rep = report(str(sweep), "--n-boot", "20")
    assert rep.returncode == 0 and rep.stderr == ""
    assert sorted(pd.read_csv(sweep / "report" / "summary.csv")["config.quant"]) == ["int8", "none"]


@pytest.mark.slow
def test_report_names_a_predictions_file_that_does_not_match_its_results(finished_sweep, tmp_path):
    """A predictions.csv rewritten after its results.json (a rerun killed between the two writes) is not mixed in."""
    _, sweep, _, jobs = copy_sweep(finished_sweep, tmp_path)
    pred_path = jobs["int8"] / "predictions.csv"
    pred = pd.read_csv(pred_path)
    pred.assign(compressed_pred=0).to_csv(pred_path, index=False)
    rep = report(str(sweep), "--n-boot", "20")
    assert rep.returncode == 0
    assert rep.stderr.strip() == (f"uqcompress.report: {pred_path} does not match its results.json "
                                  "(sha256 differs: rewritten or truncated); its run is reported without its "
                                  "predictions (intervals only as stored in results.json, no plots)")
    summary = pd.read_csv(sweep / "report" / "summary.csv").set_index("config.quant")
    assert summary.loc["int8", "compressed.accuracy"] == json.loads(
        (jobs["int8"] / "results.json").read_text())["compressed.accuracy"]
    stored = json.loads((jobs["int8"] / "results.json").read_text())
    assert summary.loc["int8", "compressed.accuracy_ci_low"] == stored["compressed.accuracy_ci_low"]  # not recomputed
    assert "int8" not in (summary.loc[summary["predictions"].notna()].index)  # the rewritten file is not read
