"""Progress bars that a run can silence (``progress=false``, or automatically when not attached to a terminal in CI).

Example:
    >>> from uqcompress.progress import progress_bar
    >>> with progress_bar(total=3, enabled=False) as bar:
    ...     bar.update(3)
"""
from __future__ import annotations

import os
from typing import Any

from tqdm.auto import tqdm

_enabled: bool = os.environ.get("CI", "").lower() not in ("1", "true")


def set_progress(enabled: bool) -> None:
    """Turn every progress bar of this process on or off."""
    global _enabled
    _enabled = bool(enabled)


def progress_bar(total: int | None = None, desc: str = "", enabled: bool = True, **kw: Any) -> tqdm:
    # disable=None: tqdm's own rule, no bar when stderr is not a terminal (log files, CI), so logs stay readable
    disable = True if not (enabled and _enabled) else None
    return tqdm(total=total, desc=desc, disable=disable, leave=False, dynamic_ncols=True, **kw)
