"""Issue 16, cases 2 and 6: a cache entry is bound to its key, checked on read, and recomputed (one warning) when bad.

Before (main 2e17459): swapping the baseline's calibration and test logits entries gave baseline accuracy 0.107
(clean 0.787) and flips 0.71, exit 0; a random-init state in place of the trained small_cnn gave accuracy 0.100, exit
0; a logits entry with a NaN row failed every later run ("probs has NaN at row 5"); a wrong-shaped tensor, a dict or a
directory at an entry's path gave a raw RuntimeError / AttributeError / IsADirectoryError (26-40 lines, exit 1).
"""
from __future__ import annotations

import errno
import json
import logging
import shutil

import pytest
import torch
from torch import nn

import uqcompress.cache as C
from uqcompress.cache import cached, entry_path, read_events
from uqcompress.compress._state import cached_state_path, calibrated_module
from uqcompress.models.base import cached_weights

from fault_helpers import FAST, cli, copy_sweep, events, numbers, warnings_in


class Calls:
    """A compute function that counts its calls and returns ``value``."""

    def __init__(self, value):
        self.value, self.n = value, 0

    def __call__(self):
        self.n += 1
        return self.value


def _warnings(caplog) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING]


def _valid_entry(kind: str, key: str, payload) -> None:
    """Write ``payload`` as a well-formed entry of ``kind/key`` (sha256 and all), as a buggy writer would."""
    C.atomic_torch_save(C._envelope(kind, key, payload, {}), entry_path(kind, key))


# ------------------------------------------------------------------------------------------------ the cache itself
def test_swapped_entries_are_detected_and_recomputed(tmp_cache, caplog):
    a, b = Calls(torch.zeros(5, 3)), Calls(torch.ones(5, 3))
    expect = {"rows": 5, "cols": 3}
    cached("logits", "ka", a, expect=expect)
    cached("logits", "kb", b, expect=expect)
    pa, pb = entry_path("logits", "ka"), entry_path("logits", "kb")
    tmp = pa.with_name("swap")
    pa.rename(tmp), pb.rename(pa), tmp.rename(pb)  # calibration <-> test, as in the issue
    with caplog.at_level(logging.WARNING):
        assert torch.equal(cached("logits", "ka", a, expect=expect), torch.zeros(5, 3))
        assert torch.equal(cached("logits", "kb", b, expect=expect), torch.ones(5, 3))
        assert torch.equal(cached("logits", "ka", a, expect=expect), torch.zeros(5, 3))  # fixed: a hit
    assert (a.n, b.n) == (2, 2)
    assert _warnings(caplog) == [f"cache entry {pa} holds entry logits/kb, not logits/ka; recomputing",
                                 f"cache entry {pb} holds entry logits/ka, not logits/kb; recomputing"]
    assert [(e["event"], e["key"]) for e in read_events("logits")] == [
        ("compute", "ka"), ("compute", "kb"), ("invalid", "ka"), ("compute", "ka"), ("invalid", "kb"),
        ("compute", "kb")]


@pytest.mark.parametrize("fault,reason", [
    ("tampered", "content does not match its recorded sha256 (changed after it was written)"),
    ("nan", "non-finite value in payload at (5, 1)"),
    ("shape", "has shape (7, 3), expected 6 rows"),
    ("cols", "has shape (6, 4), expected 3 columns"),
    ("dict", "holds a dict, expected a tensor"),
    ("dir", "is a directory, not a cache file"),
    ("garbage", "is unreadable (UnpicklingError"),
    ("truncated", "is unreadable ("),
    ("old", "has no uqcompress cache header (written by an older uqcompress or another program)"),
    ("format", "has format 'uqcompress-cache/1', expected 'uqcompress-cache/2'"),
])
def test_each_bad_entry_is_reported_once_and_recomputed(fault, reason, tmp_cache, caplog):
    good = torch.arange(18.0).reshape(6, 3)
    compute = Calls(good)
    expect = {"rows": 6, "cols": 3}
    cached("logits", "k", compute, expect=expect)
    path = entry_path("logits", "k")
    if fault == "tampered":
        env = torch.load(path, weights_only=True)
        env["payload"][2, 2] = 99.0
        torch.save(env, path)
    elif fault == "nan":
        bad = good.clone()
        bad[5, 1] = float("nan")
        _valid_entry("logits", "k", bad)
    elif fault in ("shape", "cols", "dict"):
        _valid_entry("logits", "k", {"shape": torch.zeros(7, 3), "cols": torch.zeros(6, 4),
                                     "dict": {"logits": good}}[fault])
    elif fault == "dir":
        path.unlink()
        (path / "sub").mkdir(parents=True)
    elif fault == "garbage":
        path.write_bytes(b"\x80\x04garbage")
    elif fault == "truncated":
        path.write_bytes(path.read_bytes()[:300])
    elif fault == "old":
        torch.save(good, path)  # what uqcompress 0.1.0 on main wrote: the bare payload
    elif fault == "format":
        env = torch.load(path, weights_only=True)
        env["format"] = "uqcompress-cache/1"
        torch.save(env, path)
    with caplog.at_level(logging.WARNING):
        assert torch.equal(cached("logits", "k", compute, expect=expect), good)
        assert torch.equal(cached("logits", "k", compute, expect=expect), good)
    assert compute.n == 2  # recomputed once, then a hit
    (line,) = _warnings(caplog)
    assert line.startswith(f"cache entry {path} {reason}") and line.endswith("; recomputing"), line
    assert path.is_file() and not list(path.parent.glob(".*.tmp"))


def test_a_bad_entry_in_a_cache_that_cannot_be_written_is_reported_once(tmp_cache, caplog, monkeypatch):
    """The entry stays bad (it cannot be replaced): each run recomputes it, the log says so once."""
    compute = Calls(torch.ones(2, 2))
    cached("logits", "k", compute)
    torch.save(torch.ones(2, 2), entry_path("logits", "k"))

    def full(*a, **k):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(C, "atomic_torch_save", full)
    with caplog.at_level(logging.WARNING):
        for _ in range(3):
            cached("logits", "k", compute)
    assert compute.n == 4
    msgs = _warnings(caplog)
    assert len(msgs) == 2, msgs
    assert msgs[0].startswith(f"cache entry {entry_path('logits', 'k')} has no uqcompress cache header")
    assert msgs[1].startswith(f"cache {tmp_cache} cannot be written (") and "no space left on device" in msgs[1]


def test_a_computed_value_that_breaks_the_expectation_is_an_error_not_an_entry(tmp_cache):
    nan = torch.zeros(4, 2)
    nan[3, 0] = float("nan")
    with pytest.raises(ValueError) as e:
        cached("mc", "k", lambda: nan, model="m[int8]", split="test")
    assert str(e.value) == ("mc k (model=m[int8], split=test): the computed value non-finite value in payload at "
                            "(3, 0); not cached")
    with pytest.raises(ValueError, match="has shape \\(4, 2\\), expected 5 rows"):
        cached("mc", "k", lambda: torch.zeros(4, 2), expect={"rows": 5})
    assert not entry_path("mc", "k").exists() and read_events("mc") == []
    with pytest.raises(TypeError, match="unknown keys \\['row'\\]"):
        cached("mc", "k", lambda: torch.zeros(4, 2), expect={"row": 4})


def test_check_and_shape_expectations(tmp_cache, caplog):
    compute = Calls({"x": torch.zeros(3, 2), "n": 3})
    check = lambda v: None if v["n"] == 3 else f"n={v['n']}"  # noqa: E731
    cached("features", "k", compute, check=check)
    _valid_entry("features", "k", {"x": torch.zeros(3, 2), "n": 4})
    with caplog.at_level(logging.WARNING):
        assert cached("features", "k", compute, check=check)["n"] == 3
    assert compute.n == 2 and _warnings(caplog)[0].endswith("n=4; recomputing")
    # shape with wildcards, dtype, type
    t = Calls(torch.zeros(4, 5, 3))
    assert cached("mc", "k", t, expect={"shape": (4, 5, None), "dtype": torch.float32}).shape == (4, 5, 3)
    _valid_entry("mc", "k", torch.zeros(4, 6, 3))
    cached("mc", "k", t, expect={"shape": (4, 5, None)})
    _valid_entry("mc", "k", torch.zeros(4, 5, 3, dtype=torch.float64))
    cached("mc", "k", t, expect={"dtype": torch.float32})
    _valid_entry("mc", "k", [torch.zeros(1)])
    cached("mc", "k", t, expect={"type": torch.Tensor})
    assert t.n == 4
    assert [m.split(" ", 3)[3] for m in _warnings(caplog)[1:]] == [
        "has shape (4, 6, 3), expected (4, 5, *); recomputing",
        "has dtype torch.float64, expected torch.float32; recomputing",
        "holds a list, expected a Tensor; recomputing"]


def test_entry_records_what_it_is(tmp_cache):
    cached("logits", "k", lambda: {"a": torch.zeros(2, 3, dtype=torch.float16)}, model="m", split="test")
    env = torch.load(entry_path("logits", "k"), weights_only=True)
    assert env["format"] == C.FORMAT and (env["kind"], env["key"]) == ("logits", "k")
    assert env["meta"] == {"model": "m", "split": "test"}
    assert env["tensors"] == {"payload['a']": [[2, 3], "torch.float16"]}
    assert len(env["sha256"]) == 64


# ------------------------------------------------------------------------------------------------- cached weights
def _trainer(value: float):
    calls = []

    def train(m: nn.Module) -> nn.Module:
        calls.append(1)
        with torch.no_grad():
            for p in m.parameters():
                p.fill_(value)
        return m

    return train, calls


@pytest.mark.parametrize("fault", ["random_init_raw", "other_key", "tampered", "wrong_shape"])
def test_cached_weights_are_verified(fault, tmp_cache, caplog):
    train, calls = _trainer(0.5)
    m = cached_weights(nn.Linear(3, 2), "models/t", "k", train)
    trained = {k: v.clone() for k, v in m.state_dict().items()}
    path = entry_path("models/t", "k")
    if fault == "random_init_raw":  # the injection: a fresh model's state_dict in place of the trained one
        torch.save(nn.Linear(3, 2).state_dict(), path)
    elif fault == "other_key":  # a valid entry of another key (another model's training) at this path
        cached_weights(nn.Linear(3, 2), "models/t", "k2", _trainer(-1.0)[0])
        shutil.copy(entry_path("models/t", "k2"), path)
    elif fault == "tampered":
        env = torch.load(path, weights_only=True)
        env["payload"]["weight"] = torch.randn(2, 3)
        torch.save(env, path)
    elif fault == "wrong_shape":  # well-formed, but of another architecture (a writer bug)
        _valid_entry("models/t", "k", nn.Linear(4, 2).state_dict())
    with caplog.at_level(logging.WARNING):
        again = cached_weights(nn.Linear(3, 2), "models/t", "k", train)
    assert len(calls) == 2, "the bad state must be retrained, not loaded"
    assert all(torch.equal(again.state_dict()[k], v) for k, v in trained.items())
    (line,) = _warnings(caplog)
    assert line.startswith(f"cache entry {path} ")
    assert len(calls) == 2 and cached_weights(nn.Linear(3, 2), "models/t", "k", train) is not None
    assert len(calls) == 2  # stored again: a hit
    assert [e["kind"] for e in read_events(event="compute")].count("models/t") == (3 if fault == "other_key" else 2)


def test_calibrated_state_is_bound_to_its_key(tmp_cache, caplog):
    def build():
        torch.manual_seed(0)
        return nn.Linear(3, 2)

    def calibrate_to(v):
        def calibrate(m):
            calls.append(v)
            with torch.no_grad():
                m.bias.fill_(v)
        return calibrate

    calls: list[float] = []
    a, hit = calibrated_module("demo", "ka", build, calibrate_to(1.0))
    b, _ = calibrated_module("demo", "kb", build, calibrate_to(2.0))
    assert not hit and calls == [1.0, 2.0]
    pa, pb = cached_state_path("demo", "ka"), cached_state_path("demo", "kb")
    tmp = pa.with_name("swap")
    pa.rename(tmp), pb.rename(pa), tmp.rename(pb)
    with caplog.at_level(logging.WARNING):
        a2, hit = calibrated_module("demo", "ka", build, calibrate_to(1.0))
    assert not hit and calls[-1] == 1.0 and torch.equal(a2.bias, a.bias)
    assert _warnings(caplog) == [f"cache entry {pa} holds entry compressed/demo/kb, not compressed/demo/ka; "
                                 "recomputing"]
    _valid_entry("compressed/demo", "kb", nn.Linear(3, 5).state_dict())  # a state that does not fit the structure
    with caplog.at_level(logging.WARNING):
        b2, hit = calibrated_module("demo", "kb", build, calibrate_to(2.0))
    assert not hit and torch.equal(b2.bias, b.bias)
    assert "does not fit the demo model" in _warnings(caplog)[-1]
    assert calibrated_module("demo", "kb", build, calibrate_to(2.0))[1] is True
    assert [e["key"] for e in read_events("compressed/demo", "compute")] == ["ka", "kb", "ka", "kb"]


# ------------------------------------------------------------------------------------------- end to end (the CLI)
def _entries(cache, model: str) -> dict[str, object]:
    return {e["split"]: cache / "logits" / f"{e['key']}.pt" for e in events(cache, "logits") if e["model"] == model}


@pytest.mark.slow
def test_swapped_logits_and_random_init_weights_do_not_reach_the_results(finished_sweep, tmp_path):
    """The issue's injections, run through the CLI: the numbers are those of the clean run, with one warning each."""
    cache, _, _, jobs = copy_sweep(finished_sweep, tmp_path)
    clean = numbers(jobs["int8"])
    base = _entries(cache, "small_cnn")
    tmp = base["calibration"].with_name("swap")
    base["calibration"].rename(tmp), base["test"].rename(base["calibration"]), tmp.rename(base["test"])
    r = cli(*FAST, f"hydra.run.dir={tmp_path / 'swapped'}", cache=cache)
    assert r.returncode == 0, r.stderr[-2000:]
    assert numbers(tmp_path / "swapped") == clean
    warned = [line for line in warnings_in(r.stdout) if "[WARNING]" in line]
    assert len(warned) == 2 and all("holds entry logits/" in w for w in warned), warned
    assert {str(base["calibration"]), str(base["test"])} == {w.split("cache entry ")[1].split(" ")[0] for w in warned}

    # a random init in place of the trained CNN, and nothing downstream cached: before, accuracy 0.100
    from uqcompress.models.small_cnn import SmallCNN

    (weights,) = (cache / "models" / "small_cnn").glob("*.pt")
    torch.save(SmallCNN(width=32, hidden=128, dropout=0.3).state_dict(), weights)
    shutil.rmtree(cache / "logits"), shutil.rmtree(cache / "compressed")
    r = cli(*FAST, f"hydra.run.dir={tmp_path / 'random_init'}", cache=cache)
    assert r.returncode == 0, r.stderr[-2000:]
    warned = [line for line in warnings_in(r.stdout) if "[WARNING]" in line]
    assert len(warned) == 1 and f"cache entry {weights} has no uqcompress cache header" in warned[0], warned
    assert numbers(tmp_path / "random_init") == clean  # retrained (same seed, one thread): the same model
    assert len(events(cache, "models/small_cnn")) == 2  # trained by the sweep, then once more here


@pytest.mark.slow
def test_nan_dict_directory_and_wrong_shape_entries_are_recomputed_with_one_warning_each(finished_sweep, tmp_path):
    cache, _, _, jobs = copy_sweep(finished_sweep, tmp_path)
    clean = numbers(jobs["int8"])
    base, comp = _entries(cache, "small_cnn"), _entries(cache, "small_cnn[int8]")
    env = torch.load(base["test"], weights_only=True)
    nan = env["payload"].clone()
    nan[5] = float("nan")  # a NaN row in a well-formed entry (the writer stored it: sha256 matches)
    C.atomic_torch_save(C._envelope("logits", env["key"], nan, {}), base["test"])
    torch.save({"logits": torch.zeros(3)}, base["calibration"])  # a dict
    torch.save(torch.zeros(7, 3), base["ood"])  # a wrong-shaped tensor
    comp["test"].unlink()
    comp["test"].mkdir()  # a directory
    (comp["test"] / "x").write_text("x")
    r = cli(*FAST, f"hydra.run.dir={tmp_path / 'faulty'}", cache=cache)
    assert r.returncode == 0, r.stderr[-2000:]
    assert numbers(tmp_path / "faulty") == clean
    warned = {w.split("cache entry ")[1].split(" ")[0]: w for w in warnings_in(r.stdout) if "[WARNING]" in w}
    assert set(warned) == {str(p) for p in (base["test"], base["calibration"], base["ood"], comp["test"])}, warned
    assert "non-finite value in payload at (5, 0)" in warned[str(base["test"])]
    assert "has no uqcompress cache header" in warned[str(base["calibration"])]
    assert "has no uqcompress cache header" in warned[str(base["ood"])]
    assert "is a directory" in warned[str(comp["test"])]
    assert "Traceback" not in r.stdout + r.stderr
    # fixed for good: the next run warns about nothing and computes nothing
    n = len(events(cache))
    r = cli(*FAST, f"hydra.run.dir={tmp_path / 'again'}", cache=cache)
    assert r.returncode == 0 and not warnings_in(r.stdout) and len(events(cache)) == n
    assert numbers(tmp_path / "again") == clean
    assert json.loads((tmp_path / "again" / "results.json").read_text())["run.fingerprint"]
