import os

import pytest
import torch

from uqcompress.cache import atomic_write_text, cached, fingerprint, safe_torch_load
from uqcompress.report.results import read_results, write_results


def test_fingerprint_changes_with_any_field_and_ignores_key_order():
    base = {"name": "int8", "backend": "x86", "calibration_samples": 512}
    assert fingerprint(base) == fingerprint(dict(reversed(list(base.items()))))
    for k, v in [("backend", "fbgemm"), ("calibration_samples", 511), ("name", "int8_dynamic")]:
        assert fingerprint({**base, k: v}) != fingerprint(base)
    assert fingerprint(torch.zeros(3)) != fingerprint(torch.zeros(4))
    assert fingerprint(torch.zeros(3)) != fingerprint(torch.zeros(3, dtype=torch.float64))


def test_atomic_write_keeps_old_file_when_writer_dies(tmp_path, monkeypatch):
    p = tmp_path / "results.json"
    atomic_write_text(p, "old")

    def boom(*a, **k):
        raise OSError("disk full")

    monkeypatch.setattr(os, "replace", boom)
    with pytest.raises(OSError):
        atomic_write_text(p, "new")
    assert p.read_text() == "old"
    assert [f.name for f in tmp_path.iterdir()] == ["results.json"]  # no temp file left behind


def test_cached_recomputes_corrupt_entry(tmp_cache):
    calls = []

    def compute():
        calls.append(1)
        return {"x": torch.arange(3)}

    a = cached("t", "k", compute)
    b = cached("t", "k", compute)
    assert len(calls) == 1 and torch.equal(a["x"], b["x"])
    (tmp_cache / "t" / "k.pt").write_bytes(b"garbage")
    c = cached("t", "k", compute)
    assert len(calls) == 2 and torch.equal(c["x"], a["x"])


def test_safe_load_corrupt_checkpoint_one_line(tmp_path):
    p = tmp_path / "w.pt"
    p.write_bytes(b"not a checkpoint")
    with pytest.raises(ValueError, match="is corrupt") as e:
        safe_torch_load(p)
    assert "\n" not in str(e.value)
    with pytest.raises(FileNotFoundError, match="not found"):
        safe_torch_load(tmp_path / "missing.pt")


def test_results_roundtrip_nan_as_null(tmp_path):
    write_results(tmp_path, {"baseline": {"accuracy": 0.5, "saved_rate": float("nan")}})
    text = (tmp_path / "results.json").read_text()
    assert '"baseline.saved_rate": null' in text
    r = read_results(tmp_path)
    assert r["baseline.accuracy"] == 0.5 and r["baseline.saved_rate"] != r["baseline.saved_rate"]


def test_atomic_writes_get_the_usual_file_mode(tmp_path):
    """Temp-file-then-rename must not leave results readable by the owner only (mkstemp's 0o600)."""
    import os

    import torch

    from uqcompress.cache import atomic_torch_save, atomic_write_text

    mask = os.umask(0o022)
    os.umask(mask)
    expected = 0o666 & ~mask
    atomic_write_text(tmp_path / "results.json", "{}")
    atomic_torch_save({"w": torch.zeros(1)}, tmp_path / "p.pt")
    assert (tmp_path / "results.json").stat().st_mode & 0o777 == expected
    assert (tmp_path / "p.pt").stat().st_mode & 0o777 == expected


@pytest.mark.parametrize("module", ["uqcompress.cache", "uqcompress.app", "uqcompress.report.results",
                                    "uqcompress.compress._state", "uqcompress.run_files"])
def test_docstring_examples(module, tmp_cache):
    """The runnable examples (``cached``'s interface among them) are correct."""
    import doctest
    import importlib

    result = doctest.testmod(importlib.import_module(module), optionflags=doctest.ELLIPSIS)
    assert result.attempted > 0 and result.failed == 0


def test_disk_errors_in_words():
    import errno

    from uqcompress.cache import describe_os_error

    for code, words in [(errno.ENOSPC, "no space left on device"), (errno.EROFS, "read-only file system"),
                        (errno.EACCES, "permission denied"), (errno.EDQUOT, "disk quota exceeded")]:
        assert describe_os_error(OSError(code, os.strerror(code), "/d/f")) == f"/d/f: {words}"
    assert describe_os_error(OSError(errno.ENOSPC, "No space left on device")) == "no space left on device"


def test_read_events_skips_a_torn_line(tmp_cache):
    from uqcompress.cache import log_event, read_events

    log_event("compute", "logits", "a", split="test")
    with open(tmp_cache / "events.jsonl", "a") as f:
        f.write('{"event": "comp\n')  # a line cut short (a full disk took its end)
    log_event("compute", "logits", "b")
    assert [e["key"] for e in read_events("logits", "compute")] == ["a", "b"]
