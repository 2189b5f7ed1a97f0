"""Provenance: the whole config as config.* keys, the code version from git itself, machine and versions."""
import json
import os
import platform
import socket
import subprocess
from pathlib import Path

import torch

from uqcompress.report.provenance import (config_facts, environment_facts, git_state, hydra_overrides, iso_utc,
                                          rerun_command, run_facts)

ROOT = Path(__file__).resolve().parents[2]


def test_config_facts_keep_group_choices_and_add_every_option():
    cfg = {"seed": 3, "limit": None, "device": "auto",
           "model": {"name": "small_cnn", "epochs": 2, "head_fit": {"lr": 0.1}},
           "selector": {"name": "coverage", "target": 0.8},
           "data": {"name": "mnist", "splits": {"fit": 0.6, "test": 0.4}},
           "quant": {"name": "chain", "steps": [{"name": "prune_2of4"}, {"name": "int8_dynamic"}]},
           "uncertainty": {"name": "mc_dropout", "tags": ["a", "b"]},
           "latency": {"repeats": 2}, "hydra": {"run": {"dir": "x"}}}
    f = config_facts(cfg)
    assert f["config.model"] == "small_cnn" and f["config.selector"] == "coverage"  # as before: the choice
    assert f["config.model.epochs"] == 2 and f["config.model.head_fit.lr"] == 0.1
    assert f["config.selector.target"] == 0.8 and f["config.data.splits.test"] == 0.4
    assert f["config.seed"] == 3 and f["config.limit"] is None and f["config.latency.repeats"] == 2
    assert f["config.uncertainty.tags"] == ["a", "b"]
    assert json.loads(f["config.quant.steps"]) == cfg["quant"]["steps"]
    assert not any(k.startswith("config.hydra") for k in f) and "config.model.name" not in f
    json.dumps(f)  # every value is JSON


def test_git_state_is_the_checkout_of_the_package(tmp_path):
    state = git_state()
    head = subprocess.run(["git", "-C", str(ROOT), "rev-parse", "HEAD"], capture_output=True, text=True)
    if head.returncode != 0:  # an installed copy without .git: nothing is claimed
        assert state == {}
        return
    assert state["git_commit"] == head.stdout.strip()
    dirty = subprocess.run(["git", "-C", str(ROOT), "status", "--porcelain", "--untracked-files=no"],
                           capture_output=True, text=True).stdout.strip() != ""
    assert state["git_dirty"] is dirty
    # a repository that does not track uqcompress's files says nothing about it
    subprocess.run(["git", "init", "-q", str(tmp_path)], check=True)
    assert git_state(str(tmp_path)) == {}


def test_environment_and_run_facts():
    env = environment_facts()
    assert env["run.torch_version"] == torch.__version__
    assert env["run.hostname"] == socket.gethostname() and env["run.cpu_count"] == os.cpu_count()
    assert env["run.platform"] == platform.platform() and env["run.python_version"] == platform.python_version()
    facts = run_facts(86400.0, 86412.5, ["quant=int8", "data.path=my dir/x.csv"])
    assert facts["run.started_at"] == "1970-01-02T00:00:00Z" and facts["run.duration_s"] == 12.5
    assert facts["run.overrides"] == ["quant=int8", "data.path=my dir/x.csv"]
    assert facts["run.command"] == "python -m uqcompress quant=int8 'data.path=my dir/x.csv'"
    assert rerun_command([]) == "python -m uqcompress"
    assert iso_utc(1.7e9) == "2023-11-14T22:13:20Z"
    assert hydra_overrides() is None  # outside a Hydra app
