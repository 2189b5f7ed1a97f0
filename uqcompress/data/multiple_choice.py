"""Multiple-choice question sets in groups (BIG-bench tasks, MMLU subjects, knowledge relations) -> one bundle.

Each group is a list of (item, answer index); items are ``{"question", "options", <group_by>: name, ...}``. The
groups are shuffled with the seed and mixed round robin, so a ``limit`` takes an even share of each (all of a small
one); then a stratified calibration/test split. Each loader shuffles a group with :func:`shuffle_group` as it
reads it (options, then question order, from one seeded stream). ``info["group_by"]`` names the item field that
holds the group: the pipeline reports accuracy, flips and KL per group under ``<group_by>.<name>.*``
(:mod:`uqcompress.metrics.groups`).

Example:
    >>> import numpy as np
    >>> from uqcompress.data.multiple_choice import mc_groups_bundle, shuffle_group
    >>> rng = np.random.default_rng(0)
    >>> qs = {g: shuffle_group([{"question": f"{g}{i}", "options": ["a", "b"], "subject": g} for i in range(4)],
    ...                        [i % 2 for i in range(4)], rng) for g in ("x", "y")}
    >>> d = mc_groups_bundle("toy", qs, "subject", limit=6, seed=0)
    >>> d.num_classes, sum(len(s) for s in d.splits.values()), d.info["used"], d.info["group_by"]
    (2, 6, {'x': 3, 'y': 3}, 'subject')
"""
from __future__ import annotations

from typing import Any

import numpy as np
import torch

from uqcompress.data.base import DataBundle, split_bundle


def shuffle_options(items: list[dict], answers: list[int], rng: np.random.Generator) -> list[int]:
    """Permute each item's options in place with ``rng``; returns the answers' new positions."""
    out = []
    for it, a in zip(items, answers):
        perm = rng.permutation(len(it["options"]))
        it["options"] = [it["options"][i] for i in perm]
        out.append(int(np.flatnonzero(perm == a)[0]))
    return out


def shuffle_group(items: list[dict], answers: list[int], rng: np.random.Generator,
                  options: bool = True) -> list[tuple[dict, int]]:
    """One group's questions as (item, answer) in a seeded order, each item's options permuted first (``options``)."""
    if options:
        answers = shuffle_options(items, answers, rng)
    order = rng.permutation(len(items))
    return [(items[i], answers[i]) for i in order]


def mix_groups(pools: list[list[Any]], limit: int | None) -> list[Any]:
    """Round robin over the (already shuffled) pools, then the first ``limit`` (all when None)."""
    mixed = [p[i] for i in range(max((len(p) for p in pools), default=0)) for p in pools if i < len(p)]
    return mixed if limit is None else mixed[: int(limit)]


def mc_groups_bundle(name: str, groups: dict[str, list[tuple[dict, int]]], group_by: str, limit: int | None,
                     seed: int, splits: dict[str, float] | None = None,
                     info: dict[str, Any] | None = None) -> DataBundle:
    """Mix the (shuffled, :func:`shuffle_group`) groups round robin, keep ``limit``, split calibration / test.

    ``num_classes`` is the largest option count (questions with fewer options are padded by the model)."""
    mixed = mix_groups(list(groups.values()), limit)
    if not mixed:
        raise ValueError(f"data set '{name}' has no questions")
    items = [it for it, _ in mixed]
    y = torch.tensor([a for _, a in mixed], dtype=torch.long)
    k = max(len(it["options"]) for it in items)
    used = {g: sum(it[group_by] == g for it in items) for g in groups}
    chance = float(np.mean([1.0 / len(it["options"]) for it in items]))
    info = {**(info or {}), "group_by": group_by, "used": used, "chance_accuracy": chance}
    return split_bundle(name, "multiple_choice", items, y, dict(splits or {"calibration": 0.5, "test": 0.5}), seed,
                        num_classes=k, class_names=[f"option {i}" for i in range(k)], info=info)
