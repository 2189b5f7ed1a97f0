"""Numbers as people read them: enough digits to tell runs apart, and no more.

Example:
    >>> decimals_for([0.91234, 0.91231, 0.5])
    5
    >>> fmt(0.912345, 4), fmt(float("nan")), fmt(1234567.0), fmt(3)
    ('0.9123', '—', '1,234,567', '3')
"""
from __future__ import annotations

import math
from typing import Any, Iterable

MISSING = "—"


def is_missing(v: Any) -> bool:
    """None, NaN, or pandas' NA."""
    if v is None:
        return True
    try:
        return bool(v != v)  # NaN and pd.NA
    except (TypeError, ValueError):
        return False


def decimals_for(values: Iterable[Any], least: int = 4, most: int = 8) -> int:
    """The fewest decimals (at least ``least``, at most ``most``) that keep distinct values distinct when rounded."""
    vals = sorted({float(v) for v in values if isinstance(v, (int, float)) and not is_missing(v)
                   and math.isfinite(float(v))})
    for d in range(least, most + 1):
        if len({round(v, d) for v in vals}) == len(vals):
            return d
    return most


def fmt(v: Any, decimals: int = 4) -> str:
    """A cell: integers and large floats with thousands separators, other floats with ``decimals`` decimals."""
    if is_missing(v):
        return MISSING
    if isinstance(v, bool):
        return str(v).lower()
    if isinstance(v, int):
        return f"{v:,}"
    if isinstance(v, float):
        if not math.isfinite(v):
            return str(v)
        if abs(v) >= 1000 and float(v).is_integer():
            return f"{v:,.0f}"
        return f"{v:,.{decimals}f}"
    if isinstance(v, (list, tuple)):
        return ", ".join(map(str, v))
    return str(v)


def fmt_interval(low: Any, high: Any, decimals: int = 4) -> str:
    """``[low, high]``, or empty when the interval is missing.

    >>> fmt_interval(0.1, 0.2, 3), fmt_interval(None, None)
    ('[0.100, 0.200]', '')
    """
    if is_missing(low) or is_missing(high):
        return ""
    return f"[{fmt(float(low), decimals)}, {fmt(float(high), decimals)}]"
