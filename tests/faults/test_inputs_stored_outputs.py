"""Issue 27: stored outputs (``outputs=lm_eval | arrays``, ``uqcompress.evaluate_outputs``).

Before (main abf16aa): ``outputs=lm_eval ... 'outputs.splits={calibration: 0.06, test: 0.94}'`` calibrated a
coverage-0.9 selector on 8 questions (test coverage 0.598) without the CalibrationWarning a model run gives, and so
did ``evaluate_outputs``; a ``doc_id`` of null in an lm-eval samples file died with a TypeError in
outputs/lm_eval.py. Now every door warns through one check, and a bad doc_id is one line naming file and line.
"""
from __future__ import annotations

import json
import shutil
import subprocess
import sys

import numpy as np
import pytest

import uqcompress
from fault_helpers import ROOT, env
from uqcompress.validate import MIN_RARER_SIDE, CalibrationWarning

LM = ROOT / "tests" / "fixtures" / "lm_eval"
COMMON = ["outputs=lm_eval", "progress=false", "plots=false"]


def run(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "uqcompress", *COMMON, *args], cwd=ROOT, env=env(),
                          capture_output=True, text=True, timeout=300)


def test_lm_eval_with_a_tiny_calibration_split_warns_as_a_model_run_does(tmp_path):
    r = run(f"outputs.baseline={LM / 'float32'}", f"outputs.compressed={LM / 'int4_rtn'}",
            "outputs.splits={calibration: 0.06, test: 0.94}", f"hydra.run.dir={tmp_path}")
    assert r.returncode == 0, r.stderr[-2000:]
    res = json.loads((tmp_path / "results.json").read_text())
    n_cal = res["n_calibration"]
    assert n_cal * 0.1 < MIN_RARER_SIDE  # the fault's setting: under 10 expected abstentions at coverage 0.9
    warned = [line for line in r.stderr.splitlines() if "CalibrationWarning" in line]
    assert len(warned) == 1 and f"calibration split has {n_cal} samples: too few for selector=coverage target=0.9" \
        in warned[0]


def test_evaluate_outputs_warns_too_and_not_when_calibration_suffices():
    rng = np.random.default_rng(0)
    z = rng.normal(size=(400, 5)) * 3
    y = z.argmax(1)
    zc = z + rng.normal(size=z.shape) * 0.3
    with pytest.warns(CalibrationWarning, match=r"^calibration split has 21 samples: too few for selector=coverage"):
        uqcompress.evaluate_outputs(z, zc, y, splits={"calibration": 0.05, "test": 0.95})
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("error", CalibrationWarning)
        uqcompress.evaluate_outputs(z, zc, y)  # 200 calibration rows: 20 expected abstentions, no warning


def test_a_null_doc_id_is_one_line_naming_file_and_line(tmp_path):
    base = tmp_path / "base"
    shutil.copytree(LM / "float32", base)
    path = sorted(base.glob("samples_*.jsonl"))[0]
    lines = path.read_text().splitlines()
    row = json.loads(lines[2])
    row["doc_id"] = None
    lines[2] = json.dumps(row)
    path.write_text("\n".join(lines) + "\n")
    r = run(f"outputs.baseline={base}", f"outputs.compressed={LM / 'int4_rtn'}", f"hydra.run.dir={tmp_path / 'run'}")
    assert r.returncode == 2 and "Traceback" not in r.stderr, r.stderr[-2000:]
    assert r.stderr.strip().splitlines()[-1] == (f"uqcompress: error: {path}:3: doc_id null is not a whole number "
                                                 "(lm-eval writes the question's index in its task)")
