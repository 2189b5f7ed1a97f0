"""``data=bigbench_mc data.task=NAME``: multiple-choice tasks of BIG-bench as (question, options, answer index).

A BIG-bench JSON task lists ``examples`` with ``input`` and ``target_scores`` {option: score}; the answer is the
option with the unique highest score (examples with a tie at the top are skipped and counted). The task's
``task_prefix`` (an instruction shared by all examples) is put in front of each question. Options are shuffled per
question with the seed, so the answer position is balanced (the scores do not depend on option order).

``data.task`` is one task, a ``task/subtask`` (``logical_deduction/three_objects``), or a list of them
(``data.task=[general_knowledge,emoji_movie]``), concatenated. ``data.limit`` keeps a seeded random slice of that
many questions before the calibration/test split, an even share from each task (the run-wide ``limit`` caps each
split afterwards).
``num_classes`` is the largest option count; questions with fewer options are padded by the model.

Task files come from the ``bigbench==1.0.0`` source archive via :mod:`uqcompress.data.bigbench` (downloaded once
into the cache). This is text, not images: run it with ``ood=none``.

Example (a task file written by hand):
    >>> from uqcompress.data.bigbench_mc import parse_task
    >>> task = {"examples": [{"input": "2+2?", "target_scores": {"3": 0, "4": 1, "5": 0}}]}
    >>> items, answers, skipped = parse_task(task, "toy")
    >>> items[0]["options"][answers[0]], skipped
    ('4', 0)
"""
from __future__ import annotations

import json
import logging
from typing import Any

import numpy as np

from uqcompress.data import DATASETS, DataBundle, declare
from uqcompress.data.base import count, flag
from uqcompress.data.sources import Route, Source, register
from uqcompress.data.multiple_choice import mc_groups_bundle, shuffle_group

log = logging.getLogger(__name__)

#: default task set: >= 3 options, short prompts, SmolLM2-135M well above chance (accuracy 0.63 / 0.52 / 0.52 / 0.38 /
#: 0.37 vs chance 0.25 / 0.25 / 0.25 / 0.25 / 0.20 on 60 questions each; the table is in conf/data/bigbench_mc.yaml)
DEFAULT_TASKS = ("movie_recommendation", "ruin_names", "phrase_relatedness", "hindu_knowledge", "emoji_movie")


def _archive_present(cfg: dict):
    from uqcompress.data import bigbench

    try:
        return bigbench.bigbench_archive(download=False)
    except bigbench.BigBenchUnavailable:
        return None


#: the BIG-bench archive is optional: no package index serves it any more (data=mmlu / data=knowledge need none)
SOURCE = register(Source("bigbench_mc", "BIG-bench 1.0.0 multiple-choice tasks", (
    Route("archive", "the BIG-bench 1.0.0 source archive", "set $UQCOMPRESS_BIGBENCH_ARCHIVE=PATH (or put "
          "bigbench-1.0.0.tar.gz into <cache>/bigbench/)", _archive_present, size="358 MB", licence="Apache-2.0"),
    Route("download", "a package index that still serves bigbench 1.0.0", "make data (pip's configured index)",
          lambda cfg: None, size="358 MB", licence="Apache-2.0", offline=False),
), optional=True))


def _read_task_files(task: str, only: list[str] | None = None) -> dict[str, bytes]:
    """Files of one BIG-bench task folder (indirection so tests can supply their own JSON)."""
    from uqcompress.data.bigbench import read_task_files

    return read_task_files(task, only=only)


def _prefetch(tasks: list[str]) -> None:
    """Extract all the tasks in one pass over the archive (indirection so tests can supply their own JSON)."""
    from uqcompress.data.bigbench import prefetch

    prefetch(tasks)


def parse_task(task: dict[str, Any], name: str, task_prefix: bool = True) -> tuple[list[dict], list[int], int]:
    """Normalise one BIG-bench JSON task to (items, answer indices, number of skipped examples).

    Items are ``{"question", "options", "task"}``; the answer is the index of the option with the unique highest
    score. Examples without ``target_scores``, with fewer than 2 options, empty options, or a tie at the top are
    skipped. Raises a one-line ValueError when nothing is left (e.g. a generative, not multiple-choice, task).
    """
    prefix = str(task.get("task_prefix") or "").strip() if task_prefix else ""
    items, answers, skipped = [], [], 0
    for ex in task.get("examples") or []:
        scores = ex.get("target_scores")
        if not isinstance(scores, dict) or len(scores) < 2 or "input" not in ex:
            skipped += 1
            continue
        options = [str(o).strip() for o in scores]
        values = [float(v) for v in scores.values()]
        best = max(values)
        if values.count(best) != 1 or any(not o for o in options) or len(set(options)) != len(options):
            skipped += 1
            continue
        question = str(ex["input"]).strip()
        items.append({"question": f"{prefix}\n{question}" if prefix else question, "options": options, "task": name})
        answers.append(values.index(best))
    if not items:
        raise ValueError(f"BIG-bench task '{name}' has no multiple-choice examples (input + target_scores with one "
                         f"best option); pick a multiple-choice task")
    return items, answers, skipped


def load_task(name: str, task_prefix: bool = True) -> tuple[list[dict], list[int], int]:
    """Read and parse the task ``name`` or ``name/subtask``; a task split into subtasks must name one."""
    top, _, sub = name.strip("/").partition("/")
    rel = f"{sub}/task.json" if sub else "task.json"
    files = _read_task_files(top, only=[rel])
    task = json.loads(files[rel])
    if not sub and not task.get("examples"):
        subtasks = sorted(p.rsplit("/", 1)[0] for p in _read_task_files(top) if p.count("/") == 1
                          and p.endswith("/task.json"))
        if subtasks:
            raise ValueError(f"BIG-bench task '{name}' is split into subtasks; choose one of: "
                             f"{', '.join(f'{top}/{s}' for s in subtasks)}")
    return parse_task(task, name, task_prefix)


@DATASETS.register("bigbench_mc")
@declare("multiple_choice", task=None, limit=count, splits=None, shuffle_options=flag, task_prefix=flag)
def load_bigbench_mc(cfg: dict, seed: int) -> DataBundle:
    tasks = cfg.get("task") or list(DEFAULT_TASKS)
    tasks = [tasks] if isinstance(tasks, str) else [str(t) for t in tasks]
    rng = np.random.default_rng(seed)
    _prefetch(tasks)
    groups, per_task, skipped = {}, {}, {}
    for t in tasks:
        items, answers, sk = load_task(t, bool(cfg.get("task_prefix", True)))
        groups[t] = shuffle_group(items, answers, rng, bool(cfg.get("shuffle_options", True)))
        per_task[t], skipped[t] = len(items), sk
    info = {"source": "BIG-bench 1.0.0 (PyPI bigbench source archive)", "tasks": tasks, "per_task": per_task,
            "skipped": skipped}
    return mc_groups_bundle("bigbench_mc", groups, "task", cfg.get("limit"), seed,
                            dict(cfg.get("splits") or {"calibration": 0.5, "test": 0.5}), info)
