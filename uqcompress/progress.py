"""Progress of long steps: a tqdm bar on a terminal, log lines elsewhere, nothing when switched off.

- On a terminal (stderr is a TTY and ``CI`` is not set): a tqdm bar.
- Without one (a log file, CI, a cluster job): :class:`LogProgress` logs one line to ``uqcompress.progress`` at
  each 10% milestone or every 30 s, whichever comes first, once the step has run for 10 s (short steps stay quiet),
  and a last line when it ends: a killed or stuck job shows how far it got.
- ``progress=false`` (:func:`set_progress`) or ``enabled=False``: neither.

Example:
    >>> from uqcompress.progress import progress_bar
    >>> with progress_bar(total=3, enabled=False) as bar:
    ...     bar.update(3)
"""
from __future__ import annotations

import logging
import os
import sys
import time
from typing import Any, Callable

from tqdm.auto import tqdm

log = logging.getLogger(__name__)
_enabled: bool = True


def set_progress(enabled: bool) -> None:
    """Turn every progress bar (and progress log line) of this process on or off."""
    global _enabled
    _enabled = bool(enabled)


def on_terminal() -> bool:
    """Whether progress can be drawn as a bar: stderr is a terminal and this is not a CI job."""
    isatty = getattr(sys.stderr, "isatty", None)
    return bool(isatty and isatty()) and os.environ.get("CI", "").lower() not in ("1", "true")


def _duration(seconds: float) -> str:
    """
    >>> _duration(12.3), _duration(125), _duration(7300)
    ('12 s', '2 min 5 s', '2 h 1 min')
    """
    s = int(round(seconds))
    if s < 60:
        return f"{s} s"
    if s < 3600:
        return f"{s // 60} min {s % 60} s"
    return f"{s // 3600} h {s % 3600 // 60} min"


class LogProgress:
    """tqdm's small interface (``update``, ``close``, context manager) as log lines, for output without a terminal.

    Example (a fake clock: 20 steps of 2 s each; lines at 10 s and then at each 10% milestone)::

        >>> t = iter(range(0, 1000, 2))
        >>> lines = []
        >>> bar = LogProgress(20, "train", clock=lambda: next(t), emit=lines.append)
        >>> for _ in range(20):
        ...     bar.update(1)
        >>> bar.close()
        >>> lines[0], lines[-1]
        ('train: 25% (5/20), 10 s, about 30 s left', 'train: done, 20 in 42 s')
    """

    def __init__(self, total: int | None = None, desc: str = "", every_s: float = 30.0, step: float = 0.1,
                 quiet_s: float = 10.0, clock: Callable[[], float] = time.monotonic,
                 emit: Callable[[str], None] | None = None) -> None:
        self.total, self.desc, self.n = total, desc or "progress", 0
        self.every_s, self.quiet_s = every_s, quiet_s
        self.clock = clock
        self.emit = emit or log.info
        self.start = self.last = clock()
        self.parts = max(1, round(1 / step))  # milestones: 10 for every 10%
        self.milestone = 0  # last milestone reported
        self.lines = 0
        self.closed = False

    def update(self, n: int = 1) -> None:
        self.n += n
        now = self.clock()
        elapsed = now - self.start
        if elapsed < self.quiet_s:
            return
        frac = self.n / self.total if self.total else None
        milestone = self.n * self.parts // self.total if self.total else 0  # integers: no float rounding at 30%
        if milestone > self.milestone or now - self.last >= self.every_s:
            if frac is not None:
                self.milestone = milestone
                left = elapsed * (1 - frac) / frac if frac > 0 else float("nan")
                self.emit(f"{self.desc}: {100 * frac:.0f}% ({self.n:,}/{self.total:,}), {_duration(elapsed)}"
                          + (f", about {_duration(left)} left" if frac < 1 else ""))
            else:
                self.emit(f"{self.desc}: {self.n:,} done, {_duration(elapsed)}")
            self.last = now
            self.lines += 1

    def close(self) -> None:
        if not self.closed and self.lines:  # a step long enough to have reported says when it ends
            self.emit(f"{self.desc}: done, {self.n:,} in {_duration(self.clock() - self.start)}")
        self.closed = True

    def set_postfix(self, *args: Any, **kwargs: Any) -> None:  # tqdm compatibility: nothing to show in a log
        pass

    def reset(self, total: int | None = None) -> None:  # tqdm compatibility (pooch resets before its last update)
        self.n = 0
        if total is not None:
            self.total = total

    def __enter__(self) -> "LogProgress":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()


def progress_bar(total: int | None = None, desc: str = "", enabled: bool = True, **kw: Any) -> tqdm | LogProgress:
    """A tqdm bar on a terminal, :class:`LogProgress` without one, a silent tqdm when progress is off."""
    if not (enabled and _enabled):
        return tqdm(total=total, disable=True)
    if on_terminal():
        return tqdm(total=total, desc=desc, leave=False, dynamic_ncols=True, **kw)
    return LogProgress(total, desc)
