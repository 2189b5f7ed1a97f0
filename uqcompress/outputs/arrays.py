"""``outputs=arrays``: stored logits or probabilities, one file per model (``.npz``, ``.pt`` or ``.parquet``).

Each file holds, for the same rows in the same order:

* ``logits`` (N, K) or ``probs`` (N, K) (rows >= 0 summing to 1 within 1e-3): exactly one of them;
* ``labels`` (N,) class ids in [0, K) (OOD rows: -1, or class ids for a labelled shift);
* ``split`` (N,), optional: ``calibration`` (or ``validation``/``val``), ``test`` or ``ood`` per row (``train``/
  ``fit`` rows are left out). Without it, the rows are split by ``outputs.splits``, stratified by label and seeded.

``labels`` and ``split`` may be left out of the compressed model's file; when present they must equal the baseline's.
Formats: ``.npz`` (``np.savez``; read with ``allow_pickle=False``, so ``split`` is a string array, not objects),
``.pt`` (a dict of tensors and lists, ``torch.save``; read with ``torch.load(weights_only=True)``), ``.parquet``
(columns ``labels``, ``split`` and either a list column ``logits`` / ``probs`` or one column per class named
``logit_0`` ... / ``prob_0`` ...; needs ``pyarrow``).

Example:
    >>> import numpy as np, tempfile, pathlib
    >>> d = pathlib.Path(tempfile.mkdtemp()); rng = np.random.default_rng(0)
    >>> z = rng.normal(size=(40, 3)); y = rng.integers(0, 3, 40)
    >>> np.savez(d / "base.npz", logits=z, labels=y); np.savez(d / "comp.npz", logits=z + 0.01, labels=y)
    >>> s = read_arrays(str(d / "base.npz"), str(d / "comp.npz"), seed=0)
    >>> len(s.baseline["calibration"]) + len(s.baseline["test"])
    40
"""
from __future__ import annotations

import pickle
import zipfile
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from uqcompress.outputs import SOURCES
from uqcompress.outputs.base import StoredOutputs, as_logits, check_fractions, from_arrays

SUFFIXES = (".npz", ".pt", ".pth", ".parquet")
SCORE_KEYS = ("logits", "probs")


def _parquet_columns(df: pd.DataFrame, source: str) -> dict[str, Any]:
    out: dict[str, Any] = {k: df[k].to_numpy() for k in ("labels", "split") if k in df.columns}
    for key, prefix in (("logits", "logit_"), ("probs", "prob_")):
        if key in df.columns:
            try:
                out[key] = np.stack([np.asarray(v, dtype=np.float64) for v in df[key]])
            except ValueError:
                raise ValueError(f"{source}: column '{key}' holds lists of different lengths") from None
        cols = [c for c in df.columns if str(c).startswith(prefix) and str(c)[len(prefix):].isdigit()]
        if cols:
            cols.sort(key=lambda c: int(str(c)[len(prefix):]))
            if [int(str(c)[len(prefix):]) for c in cols] != list(range(len(cols))):
                raise ValueError(f"{source}: columns {prefix}0 ... must be numbered 0..K-1 without gaps")
            out[key] = df[cols].to_numpy(dtype=np.float64)
    return out


def read_file(path: Any, option: str) -> dict[str, Any]:
    """The arrays of one file as a dict (numpy arrays, or lists for string columns)."""
    if path in (None, "", "???"):
        raise ValueError(f"outputs=arrays needs {option}=FILE (.npz, .pt or .parquet with logits or probs and labels)")
    p = Path(str(path)).expanduser()
    if not p.exists():
        raise FileNotFoundError(f"{option}: path '{p}' does not exist")
    if p.suffix.lower() not in SUFFIXES:
        raise ValueError(f"{option}: '{p.name}' is not one of: {', '.join(SUFFIXES)}")
    suffix = p.suffix.lower()
    try:
        if suffix == ".npz":
            with np.load(p, allow_pickle=False) as z:
                return {k: z[k] for k in z.files}
        if suffix in (".pt", ".pth"):
            import torch

            obj = torch.load(p, map_location="cpu", weights_only=True)
            if not isinstance(obj, dict):
                raise ValueError(f"{option}: '{p.name}' holds a {type(obj).__name__}, not a dict of arrays")
            return {str(k): (v.numpy() if isinstance(v, torch.Tensor) else v) for k, v in obj.items()}
        return _parquet_columns(pd.read_parquet(p), f"{option} '{p.name}'")
    except ImportError as e:
        raise ModuleNotFoundError(f"{option}: reading '{p.name}' needs {e.name}: "
                                  "pip install pyarrow (in the uqcompress clone: .venv/bin/pip install -e '.[outputs]')") from None
    except ValueError as e:
        msg = str(e).splitlines()[0] if str(e) else type(e).__name__
        if "pickle" in msg.lower():
            msg = "it holds Python objects; save split as a string array (np.asarray(split, dtype=str))"
        raise ValueError(msg if msg.startswith(option) else f"{option}: cannot read '{p.name}': {msg}") from None
    except pickle.UnpicklingError as e:
        what = str(e).split("WeightsUnpickler error:")[-1].strip().splitlines()[0][:160]
        raise ValueError(f"{option}: cannot read '{p.name}' with torch.load(weights_only=True): {what}; save only "
                         "tensors, numbers, strings and lists of them") from None
    except (OSError, zipfile.BadZipFile, EOFError, RuntimeError) as e:
        msg = str(e).splitlines()[0] if str(e) else type(e).__name__
        raise ValueError(f"{option}: cannot read '{p.name}' ({msg[:160]}); is it complete?") from None


def scores_of(arrays: dict[str, Any], option: str) -> np.ndarray:
    """(N, K) float64 logits from the file's ``logits`` or ``probs`` (checked)."""
    present = [k for k in SCORE_KEYS if k in arrays]
    if len(present) != 1:
        raise ValueError(f"{option} must hold exactly one of 'logits' or 'probs' (it holds: "
                         f"{', '.join(sorted(arrays)) or 'nothing'})")
    key = present[0]
    return as_logits(np.asarray(arrays[key]), key, f"{option} {key}")


def _same(name: str, base: Any, comp: Any) -> None:
    """The compressed file's ``labels`` / ``split``, when given, must equal the baseline's."""
    b, c = np.asarray(base), np.asarray(comp)
    if b.shape != c.shape:
        raise ValueError(f"outputs.compressed {name} has shape {c.shape} but outputs.baseline {name} has {b.shape}")
    diff = np.flatnonzero(b.astype(str) != c.astype(str))
    if len(diff):
        i = int(diff[0])
        raise ValueError(f"outputs.compressed {name} differ from outputs.baseline's at row {i} ({c[i]!r} vs "
                         f"{b[i]!r}): the files must hold the same rows in the same order")


@SOURCES.register("arrays")
def read_arrays(baseline: str | None = None, compressed: str | None = None, splits: dict | None = None, *,
                seed: int = 0) -> StoredOutputs:
    """Read one file per model (see the module docstring)."""
    fractions = check_fractions(splits)
    fb, fc = read_file(baseline, "outputs.baseline"), read_file(compressed, "outputs.compressed")
    zb, zc = scores_of(fb, "outputs.baseline"), scores_of(fc, "outputs.compressed")
    if "labels" not in fb:
        raise ValueError(f"outputs.baseline must hold 'labels' (it holds: {', '.join(sorted(fb))})")
    for key in ("labels", "split"):
        if key in fc:
            if key not in fb:
                raise ValueError(f"outputs.compressed holds '{key}' but outputs.baseline does not")
            _same(key, fb[key], fc[key])
    n = zb.shape[0]
    rows = pd.DataFrame({"row": np.arange(n)})
    facts = {"outputs.source": "arrays", "outputs.baseline": str(Path(str(baseline)).expanduser().resolve()),
             "outputs.compressed": str(Path(str(compressed)).expanduser().resolve()),
             "outputs.num_rows": int(n)}
    return from_arrays(zb, zc, np.asarray(fb["labels"]), split=fb.get("split"), fractions=fractions, seed=seed,
                       names=("outputs.baseline", "outputs.compressed"), rows=rows, facts=facts,
                       labels_name="outputs.baseline labels")
