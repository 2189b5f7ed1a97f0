"""Issue 16, case 9: concurrent jobs on one cache compute each entry once (per-entry filelock), and every real
computation (inference passes, trained weights, calibrated states) is an event in ``<cache>/events.jsonl``.

Before (main 2e17459): nothing locked; two concurrent runs calibrated the same int8 model twice, and a 4x2 joblib
sweep with n_jobs=2 ran 21 inference passes instead of 12 (see test_sweep_parallel.py).
"""
from __future__ import annotations

import json
import subprocess
import sys

import pytest

from fault_helpers import ROOT, env

WORKER = r'''
import logging, sys, time
from pathlib import Path
import torch
from torch import nn
from uqcompress.cache import cached, set_cache_dir
from uqcompress.compress._state import calibrated_module
from uqcompress.models.base import cached_weights

logging.basicConfig(level=logging.INFO, format="%(message)s")
cache, barrier, me, what = Path(sys.argv[1]), Path(sys.argv[2]), sys.argv[3], sys.argv[4]
set_cache_dir(cache)
(barrier / me).touch()
while len(list(barrier.iterdir())) < 2:  # start together
    time.sleep(0.01)

def slow(value):
    time.sleep(2.0)  # long enough for the other job to find the entry missing and wait for it
    return value

if what == "cached":
    out = cached("logits", "k", lambda: slow(torch.full((3,), float(me))), model="m", split="test").tolist()
elif what == "weights":
    def train(m):
        with torch.no_grad():
            m.weight.fill_(slow(float(me)))
        return m
    out = cached_weights(nn.Linear(2, 2), "models/demo", "k", train).weight.flatten().tolist()
else:
    def calibrate(m):
        with torch.no_grad():
            m.bias.fill_(slow(float(me)))
    out = calibrated_module("demo", "k", lambda: nn.Linear(2, 2), calibrate)[0].bias.tolist()
print("RESULT", out, flush=True)
'''


@pytest.mark.parametrize("what,kind", [("cached", "logits"), ("weights", "models/demo"),
                                       ("calibrated", "compressed/demo")])
def test_two_concurrent_jobs_compute_an_entry_once(what, kind, tmp_path):
    cache, barrier = tmp_path / "cache", tmp_path / "barrier"
    barrier.mkdir()
    procs = [subprocess.Popen([sys.executable, "-c", WORKER, str(cache), str(barrier), me, what], cwd=ROOT,
                              env=env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
             for me in ("1", "2")]
    outs = [p.communicate(timeout=300) for p in procs]
    assert all(p.returncode == 0 for p in procs), [o[1][-2000:] for o in outs]
    results = [next(line for line in o[0].splitlines() if line.startswith("RESULT")) for o in outs]
    assert results[0] == results[1]  # the second job got the first one's value, not its own
    computes = [json.loads(line) for line in (cache / "events.jsonl").read_text().splitlines()]
    assert [(e["event"], e["kind"]) for e in computes] == [("compute", kind)]
    waited = [o[1] for o in outs if f"waiting for another job computing {kind}/k" in o[1]]
    assert len(waited) == 1
