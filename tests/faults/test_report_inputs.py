"""Issue 27: report pages over run folders whose files do not fit together.

Before (main abf16aa): a run page over a folder whose predictions.csv belongs to another run listed that run's 45
flipped examples while results.json said 5 (the sweep report already checked the predictions' sha256; the run page did
not); a list where results.json should hold a number died in report/html.py with a TypeError. Now the run page checks
the sha256 as the sweep report does (one warning, examples not shown), and a non-number is one line (exit 2 for a run
page, the run listed as failed with one warning in a sweep report).
"""
from __future__ import annotations

import subprocess
import sys

import numpy as np
import pandas as pd

from fault_helpers import ROOT, env
from uqcompress.report.results import write_results


def predictions(n: int, flips: int, seed: int) -> pd.DataFrame:
    """``n`` test rows, the baseline always right, the compressed model wrong on the first ``flips``."""
    rng = np.random.default_rng(seed)
    label = rng.integers(0, 10, n)
    comp = label.copy()
    comp[:flips] = (label[:flips] + 1) % 10
    return pd.DataFrame({"index": np.arange(n), "id": [f"test:{i}" for i in range(n)], "split": "test",
                         "label": label, "baseline_pred": label, "compressed_pred": comp,
                         "baseline_confidence": rng.random(n), "compressed_confidence": rng.random(n),
                         "compressed_accepted": rng.random(n) < 0.9})


def run_folder(path, n: int, flips: int, seed: int, with_predictions: bool = True, **extra):
    metrics = {"config.model": "small_cnn", "config.quant": "int8", "config.data": "mnist", "n_test": n,
               "baseline.accuracy": 1.0, "compressed.accuracy": 1 - flips / n, "compressed.flips": flips / n, **extra}
    path.mkdir(parents=True)
    write_results(path, metrics, predictions(n, flips, seed) if with_predictions else None)
    return path


def report(*dirs) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "uqcompress.report", *map(str, dirs)], cwd=ROOT, env=env(),
                          capture_output=True, text=True, timeout=300)


def test_run_page_does_not_list_another_runs_flips(tmp_path):
    mine = run_folder(tmp_path / "mine", 100, 5, 0)
    other = run_folder(tmp_path / "other", 100, 45, 1)
    assert report(mine).returncode == 0
    assert "5 flipped test inputs (5 C→I, 0 I→C)" in (mine / "report.html").read_text()  # its own: shown

    (mine / "predictions.csv").write_bytes((other / "predictions.csv").read_bytes())  # another run's file
    r = report(mine)
    assert r.returncode == 0, r.stderr[-2000:]
    page = (mine / "report.html").read_text()
    assert "45 flipped" not in page and "5 flipped" not in page
    assert f"Not shown: {mine / 'predictions.csv'} does not match its results.json" in page
    warned = [line for line in r.stderr.splitlines() if "does not match its results.json" in line]
    assert len(warned) == 1 and str(mine / "predictions.csv") in warned[0] and "Traceback" not in r.stderr


def test_a_list_where_a_number_belongs_is_one_line(tmp_path):
    bad = run_folder(tmp_path / "sweep" / "bad", 50, 2, 0, False, **{"compressed.kl": [0.01, 0.02]})
    run_folder(tmp_path / "sweep" / "good", 50, 3, 1, False)
    r = report(bad)
    assert r.returncode == 2 and "Traceback" not in r.stderr
    assert r.stderr.strip().splitlines() == [f"uqcompress.report: error: {bad / 'results.json'}: compressed.kl is a "
                                             "list ([0.01, 0.02]), not a number; rerun the run or fix the file"]
    r = report(tmp_path / "sweep")  # a sweep report goes on without it, naming it once
    assert r.returncode == 0 and "Traceback" not in r.stderr, r.stderr[-2000:]
    assert sum("compressed.kl is a list" in line for line in r.stderr.splitlines()) == 1
    summary = pd.read_csv(tmp_path / "sweep" / "report" / "summary.csv")
    assert list(summary["compressed.flips"]) == [0.06]  # the good run only
