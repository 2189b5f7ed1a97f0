"""Writing a run's results: flat ``results.json`` and per-sample ``predictions.csv``, both atomically.

``results.json`` is written last (its presence marks a complete run) and records what the run was: ``run.fingerprint``
(the resolved config that produced it and the uqcompress version, see :func:`uqcompress.app.run_fingerprint`),
``run.uqcompress_version`` and ``run.predictions_sha256`` (binding the ``predictions.csv`` written with it).

Example:
    >>> from uqcompress.report.results import flatten
    >>> flatten({"baseline": {"accuracy": 0.9}, "seed": 0})
    {'baseline.accuracy': 0.9, 'seed': 0}
"""
from __future__ import annotations

import hashlib
import io
import json
import math
from pathlib import Path
from typing import TYPE_CHECKING, Any

from uqcompress.cache import atomic_write_bytes, atomic_write_text, describe_os_error, file_sha256

if TYPE_CHECKING:  # a job reads results.json (resume) long before it writes a frame: pandas is not imported here
    import pandas as pd

RESULTS = "results.json"
PREDICTIONS = "predictions.csv"
FINGERPRINT = "run.fingerprint"
VERSION = "run.uqcompress_version"
PREDICTIONS_SHA = "run.predictions_sha256"


class UnreadableResults(ValueError):
    """A ``results.json`` that cannot be read (truncated, not JSON, not a flat object); the message names the file."""


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


def write_results(run_dir: str | Path, metrics: dict[str, Any], predictions: pd.DataFrame | None = None,
                  run: dict[str, Any] | None = None) -> Path:
    """Write ``predictions.csv`` and then ``results.json`` (flat keys, NaN as null, ``run`` under ``run.*``, the
    predictions' sha256 as ``run.predictions_sha256``) into ``run_dir``; returns the json path.

    Both files are written atomically; a disk fault raises ``OSError`` naming the file and leaves no half file.
    """
    run_dir = Path(run_dir)
    flat = {k: _jsonable(v) for k, v in flatten(metrics).items()}
    flat.update(flatten(run or {}, "run."))
    if predictions is not None:
        buf = io.StringIO()
        predictions.to_csv(buf, index=False)
        data = buf.getvalue().encode("utf-8")
        flat[PREDICTIONS_SHA] = hashlib.sha256(data).hexdigest()
        atomic_write_bytes(run_dir / PREDICTIONS, data)
    path = run_dir / RESULTS
    atomic_write_text(path, json.dumps(flat, indent=2, sort_keys=True))  # last: its presence marks a complete run
    return path


def read_results(run_dir: str | Path) -> dict[str, Any]:
    """The flat results of a run (null -> NaN); :class:`UnreadableResults` names a truncated or foreign file."""
    path = Path(run_dir) / RESULTS
    try:
        with open(path, encoding="utf-8") as f:
            data = json.load(f)
    except (ValueError, UnicodeDecodeError) as e:
        raise UnreadableResults(f"{path} is unreadable (truncated or not JSON: {str(e).splitlines()[0]})") from None
    except OSError as e:
        raise UnreadableResults(f"{path} is unreadable ({describe_os_error(e).split(': ')[-1]})") from None
    if not isinstance(data, dict):
        raise UnreadableResults(f"{path} is unreadable (a JSON {type(data).__name__}, not an object of results)")
    return {k: (float("nan") if v is None else v) for k, v in data.items()}


def check_numbers(run_dir: str | Path, results: dict[str, Any], keys: Any) -> None:
    """Raise :class:`UnreadableResults` naming the first of ``keys`` whose value in ``results`` is a list, a mapping
    or a boolean where the report shows a number (a number, null or ``"inf"`` is fine).

    >>> check_numbers("run", {"baseline.accuracy": [0.9]}, ["baseline.accuracy"])
    Traceback (most recent call last):
    uqcompress.report.results.UnreadableResults: run/results.json: baseline.accuracy is a list ([0.9]), not a number; rerun the run or fix the file
    """
    for key in keys:
        v = results.get(key)
        if isinstance(v, bool) or not (v is None or isinstance(v, (int, float, str))):
            shown = repr(v) if len(repr(v)) <= 60 else repr(v)[:57] + "..."
            raise UnreadableResults(f"{Path(run_dir) / RESULTS}: {key} is a {type(v).__name__} ({shown}), not a "
                                    "number; rerun the run or fix the file")


def predictions_problem(run_dir: str | Path, results: dict[str, Any]) -> str | None:
    """Why ``predictions.csv`` of a run does not belong to its ``results.json`` (missing, changed), else None.

    Results written before the sha256 was recorded are taken as they are.
    """
    path = Path(run_dir) / PREDICTIONS
    want = results.get(PREDICTIONS_SHA)
    if not path.is_file():
        return f"{path} is missing" if want else None
    if want and file_sha256(path) != want:
        return f"{path} does not match its results.json (sha256 differs: rewritten or truncated)"
    return None
