"""Writing a run's results: flat ``results.json`` and per-sample ``predictions.csv``, both atomically.

Example:
    >>> from uqcompress.report.results import flatten
    >>> flatten({"baseline": {"accuracy": 0.9}, "seed": 0})
    {'baseline.accuracy': 0.9, 'seed': 0}
"""
from __future__ import annotations

import io
import json
import math
from pathlib import Path
from typing import Any

import pandas as pd

from uqcompress.cache import atomic_write_text

RESULTS = "results.json"
PREDICTIONS = "predictions.csv"


def flatten(d: dict, prefix: str = "") -> dict[str, Any]:
    out: dict[str, Any] = {}
    for k, v in d.items():
        key = f"{prefix}{k}"
        if isinstance(v, dict):
            out.update(flatten(v, key + "."))
        else:
            out[key] = v
    return out


def _jsonable(v: Any) -> Any:
    if hasattr(v, "item") and getattr(v, "ndim", 1) == 0:
        v = v.item()
    if isinstance(v, float) and not math.isfinite(v):
        return None if math.isnan(v) else str(v)  # NaN -> null (undefined metric), inf -> "inf"
    if isinstance(v, (list, tuple)):
        return [_jsonable(x) for x in v]
    return v


def write_results(run_dir: str | Path, metrics: dict[str, Any], predictions: pd.DataFrame | None = None) -> Path:
    """Write ``results.json`` (flat keys, NaN as null) and ``predictions.csv`` into ``run_dir``; returns the json path."""
    run_dir = Path(run_dir)
    flat = {k: _jsonable(v) for k, v in flatten(metrics).items()}
    if predictions is not None:
        buf = io.StringIO()
        predictions.to_csv(buf, index=False)
        atomic_write_text(run_dir / PREDICTIONS, buf.getvalue())
    path = run_dir / RESULTS
    atomic_write_text(path, json.dumps(flat, indent=2, sort_keys=True))  # last: its presence marks a complete run
    return path


def read_results(run_dir: str | Path) -> dict[str, Any]:
    with open(Path(run_dir) / RESULTS) as f:
        return {k: (float("nan") if v is None else v) for k, v in json.load(f).items()}
