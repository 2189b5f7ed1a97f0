"""Progress: a bar on a terminal, log lines every 10% / 30 s without one (after 10 s), nothing when switched off."""
import io
import logging

import pytest
from tqdm.auto import tqdm

from uqcompress import progress
from uqcompress.progress import LogProgress, progress_bar, set_progress


class Clock:
    def __init__(self):
        self.t = 0.0

    def __call__(self):
        return self.t


def run(total, seconds_per_step, steps=None, **kw):
    clock, lines = Clock(), []
    bar = LogProgress(total, "step", clock=clock, emit=lines.append, **kw)
    for _ in range(steps if steps is not None else total):
        clock.t += seconds_per_step
        bar.update(1)
    bar.close()
    return lines


def test_a_line_per_ten_percent_once_past_ten_seconds():
    lines = run(100, 1.0)  # 100 s in all
    assert lines[0] == "step: 10% (10/100), 10 s, about 1 min 30 s left"
    assert [l.split(":")[1].split("%")[0].strip() for l in lines[:-2]] == [str(p) for p in range(10, 100, 10)]
    assert lines[-2].startswith("step: 100% (100/100), 1 min 40 s") and lines[-1] == "step: done, 100 in 1 min 40 s"


def test_short_steps_stay_quiet_and_slow_ones_report_every_30_s():
    assert run(1000, 0.005) == []  # 5 s: nothing
    lines = run(4, 35.0)  # each 25% step takes 35 s: milestones carry it
    assert len(lines) == 5
    lines = run(None, 7.0, steps=10)  # no total: every 30 s
    assert lines == ["step: 5 done, 35 s", "step: 10 done, 1 min 10 s", "step: done, 10 in 1 min 10 s"]


def test_which_progress_a_run_gets(monkeypatch):
    monkeypatch.setattr(progress, "_enabled", True)  # an earlier run in this process may have set progress=false
    monkeypatch.setattr(progress, "on_terminal", lambda: True)
    assert isinstance(progress_bar(10), tqdm) and not progress_bar(10).disable
    monkeypatch.setattr(progress, "on_terminal", lambda: False)
    assert isinstance(progress_bar(10, "x"), LogProgress)
    assert progress_bar(10, enabled=False).disable
    set_progress(False)
    assert progress_bar(10).disable


@pytest.mark.parametrize("isatty, ci, want", [(True, "", True), (True, "true", False), (False, "", False)])
def test_on_terminal(monkeypatch, isatty, ci, want):
    stream = io.StringIO()
    stream.isatty = lambda: isatty
    monkeypatch.setattr("sys.stderr", stream)
    monkeypatch.setenv("CI", ci)
    assert progress.on_terminal() is want


def test_log_lines_go_to_the_uqcompress_progress_logger(caplog):
    clock = Clock()
    bar = LogProgress(2, "infer", clock=clock)
    with caplog.at_level(logging.INFO, logger="uqcompress.progress"):
        clock.t = 11.0
        bar.update(1)
    assert [r.getMessage() for r in caplog.records] == ["infer: 50% (1/2), 11 s, about 11 s left"]
