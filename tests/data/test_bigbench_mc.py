"""BIG-bench multiple-choice parsing and the ``bigbench_mc`` loader, on task JSON the tests write."""
from __future__ import annotations

import json

import pytest
import torch

from uqcompress.data import bigbench_mc, load_dataset
from uqcompress.data.bigbench_mc import parse_task

CAPITALS = {
    "task_prefix": "Answer the question.",
    "examples": [
        {"input": "Capital of France?", "target_scores": {"Rome": 0, "Paris": 1, "Oslo": 0}},
        {"input": "Capital of Norway?", "target_scores": {"Oslo": 1.0, "Rome": 0.0, "Paris": 0.0, "Bern": 0.0}},
        {"input": "Tie at the top", "target_scores": {"a": 1, "b": 1, "c": 0}},
        {"input": "Generative example", "target": "free text"},
        {"input": "  Capital of Italy?  ", "target_scores": {"Paris": 0, " Rome ": 1, "Bern": 0}},
    ],
}


def fake_tasks(monkeypatch, tasks: dict[str, dict]) -> None:
    """Serve ``{"task" or "task/sub": json}`` through the loader's file reader."""

    def read(name, only=None):
        files = {}
        for key, task in tasks.items():
            top, _, sub = key.partition("/")
            if top == name:
                files[f"{sub}/task.json" if sub else "task.json"] = json.dumps(task).encode()
        if not files:
            raise ValueError(f"no BIG-bench task '{name}'")
        if only is not None:
            missing = [f for f in only if f not in files]
            if missing == ["task.json"]:  # a task made only of subtasks has a top-level task.json without examples
                files["task.json"] = json.dumps({"name": name}).encode()
            return {f: files[f] for f in only}
        return files

    monkeypatch.setattr(bigbench_mc, "_read_task_files", read)
    monkeypatch.setattr(bigbench_mc, "_prefetch", lambda tasks: None)


def test_parse_task_normalises_and_skips():
    items, answers, skipped = parse_task(CAPITALS, "capitals")
    assert skipped == 2  # the tie and the generative example
    assert [it["options"][a] for it, a in zip(items, answers)] == ["Paris", "Oslo", "Rome"]
    assert items[0]["question"] == "Answer the question.\nCapital of France?"
    assert items[2]["question"].endswith("Capital of Italy?") and items[2]["options"][1] == "Rome"
    assert items[1]["task"] == "capitals"
    plain, _, _ = parse_task(CAPITALS, "capitals", task_prefix=False)
    assert plain[0]["question"] == "Capital of France?"


def test_parse_task_refuses_generative_task():
    with pytest.raises(ValueError, match="'gen' has no multiple-choice examples"):
        parse_task({"examples": [{"input": "x", "target": "y"}]}, "gen")


def test_loader_splits_shuffles_and_concatenates(monkeypatch):
    many = {"examples": [{"input": f"q{i}", "target_scores": {f"o{i}_{k}": int(k == i % 5) for k in range(5)}}
                         for i in range(60)]}
    fake_tasks(monkeypatch, {"capitals": CAPITALS, "many": many})
    data = load_dataset({"name": "bigbench_mc", "task": ["capitals", "many"]}, seed=0)
    assert data.modality == "multiple_choice" and data.num_classes == 5
    assert set(data.splits) == {"calibration", "test"}
    assert len(data["calibration"]) + len(data["test"]) == 63
    assert data.info["per_task"] == {"capitals": 3, "many": 60} and data.info["skipped"]["capitals"] == 2
    for split in data.splits.values():
        assert split.y.dtype == torch.int64 and isinstance(split.x, list)
        for it, a in zip(split.x, split.y.tolist()):
            if it["task"] == "many":  # the right answer survived the option shuffle
                i = int(it["question"][1:])
                assert it["options"][a] == f"o{i}_{i % 5}"
    answers = torch.cat([s.y for s in data.splits.values()])
    assert len(answers.unique()) == 5  # shuffling spreads the answer position
    again = load_dataset({"name": "bigbench_mc", "task": ["capitals", "many"]}, seed=0)
    assert again["test"].fingerprint() == data["test"].fingerprint()
    other = load_dataset({"name": "bigbench_mc", "task": ["capitals", "many"]}, seed=1)
    assert other["test"].fingerprint() != data["test"].fingerprint()


def test_loader_limit_and_single_task_string(monkeypatch):
    many = {"examples": [{"input": f"q{i}", "target_scores": {"a": int(i % 3 == 0), "b": int(i % 3 == 1),
                                                               "c": int(i % 3 == 2)}} for i in range(90)]}
    fake_tasks(monkeypatch, {"many": many})
    data = load_dataset({"name": "bigbench_mc", "task": "many", "limit": 20}, seed=0)
    assert len(data["calibration"]) + len(data["test"]) == 20 and data.num_classes == 3
    assert data.info["chance_accuracy"] == pytest.approx(1 / 3)
    fake_tasks(monkeypatch, {"many": many, "capitals": CAPITALS})
    mixed = load_dataset({"name": "bigbench_mc", "task": ["many", "capitals"], "limit": 4}, seed=0)
    assert mixed.info["used"] == {"many": 2, "capitals": 2}  # an even share of each task, not 4 from the big one
    mixed = load_dataset({"name": "bigbench_mc", "task": ["many", "capitals"], "limit": 10}, seed=0)
    assert mixed.info["used"] == {"many": 7, "capitals": 3}  # all of the small task, the rest from the big one


def test_task_with_subtasks_names_them(monkeypatch):
    sub = {"examples": [{"input": "x", "target_scores": {"a": 1, "b": 0, "c": 0}}] * 4}
    fake_tasks(monkeypatch, {"deduce/three": sub, "deduce/five": sub})
    with pytest.raises(ValueError, match="choose one of: deduce/five, deduce/three"):
        load_dataset({"name": "bigbench_mc", "task": "deduce"}, seed=0)
    data = load_dataset({"name": "bigbench_mc", "task": "deduce/three", "splits": {"calibration": 0.5,
                                                                                   "test": 0.5}}, seed=0)
    assert data.info["tasks"] == ["deduce/three"]


def test_reads_tasks_through_the_bigbench_archive_reader(tmp_path, tmp_cache, monkeypatch):
    """The real reader (uqcompress.data.bigbench) on a small bigbench-shaped archive: task, subtasks, listing."""
    import io
    import tarfile

    from uqcompress.data.bigbench import ENV_VAR

    root = "bigbench-1.0.0/bigbench/benchmark_tasks"
    sub = {"examples": [{"input": f"x{i}", "target_scores": {"a": int(i % 3 == 0), "b": int(i % 3 == 1),
                                                              "c": int(i % 3 == 2)}} for i in range(12)]}
    members = {f"{root}/capitals/task.json": CAPITALS, f"{root}/deduce/task.json": {"name": "deduce"},
               f"{root}/deduce/three/task.json": sub, f"{root}/deduce/five/task.json": sub}
    archive = tmp_path / "bigbench-1.0.0.tar.gz"
    with tarfile.open(archive, "w:gz") as tar:
        for name, task in members.items():
            data = json.dumps(task).encode()
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    monkeypatch.setenv(ENV_VAR, str(archive))
    from uqcompress.data import bigbench

    scans = []
    real_scan = bigbench._scan
    monkeypatch.setattr(bigbench, "_scan", lambda *a: scans.append(a[1]) or real_scan(*a))
    data = load_dataset({"name": "bigbench_mc", "task": ["capitals", "deduce/three"]}, seed=0)
    assert data.info["per_task"] == {"capitals": 3, "deduce/three": 12} and data.num_classes == 4
    assert scans == [{"capitals", "deduce"}]  # both tasks from one pass over the archive
    with pytest.raises(ValueError, match="choose one of: deduce/five, deduce/three"):
        load_dataset({"name": "bigbench_mc", "task": "deduce"}, seed=0)
    with pytest.raises(ValueError, match="no BIG-bench task 'capitalz'"):
        load_dataset({"name": "bigbench_mc", "task": "capitalz"}, seed=0)


def test_yaml_says_ood_none():
    from pathlib import Path

    text = (Path(bigbench_mc.__file__).parents[1] / "conf" / "data" / "bigbench_mc.yaml").read_text()
    assert "ood=none" in text and "name: bigbench_mc" in text
