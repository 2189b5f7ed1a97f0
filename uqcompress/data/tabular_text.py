"""``data=csv data.path=FILE``: your own texts and labels in a ``.csv``, ``.tsv``, ``.jsonl`` or ``.json`` file.

The format follows the suffix (``.gz`` / ``.bz2`` / ``.zip`` / ``.xz`` compression is read too). Columns are named
in the config: ``data.text_column`` (default ``text``), ``data.label_column`` (default ``label``; may be null for an
OOD set) and optionally ``data.split_column`` (train|val|test per row; otherwise a seeded stratified split).
Integer labels are class ids; string labels are mapped to ids in sorted order (or in the order of
``data.class_names``), and the mapping is reported as ``data.label_mapping`` in ``results.json``.

Example:
    >>> import tempfile
    >>> from uqcompress.data import load_dataset
    >>> path = tempfile.mktemp(suffix=".csv")
    >>> _ = open(path, "w").write("text,label\\n" + "".join(f"good {i},pos\\nbad {i},neg\\n" for i in range(10)))
    >>> d = load_dataset({"name": "csv", "path": path}, seed=0)
    >>> d.modality, d.class_names, d.info["label_mapping"], len(d["fit"])
    ('text', ['neg', 'pos'], {'neg': 0, 'pos': 1}, 12)
"""
from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from uqcompress.data import DATASETS, declare
from uqcompress.data.base import DataBundle, count, flag
from uqcompress.data.generic import build_bundle, encode_labels, is_ood, split_names, user_path

if TYPE_CHECKING:  # pandas is imported when a table is read: every job imports every data module (the registry)
    import pandas as pd

FORMATS = (".csv", ".tsv", ".jsonl", ".json")
_COMPRESSION = {".gz", ".bz2", ".zip", ".xz", ".zst"}


def table_format(path: Path) -> str:
    """The table format from the suffix, ignoring a compression suffix (``reviews.csv.gz`` -> ``.csv``)."""
    suffixes = [s.lower() for s in path.suffixes]
    while suffixes and suffixes[-1] in _COMPRESSION:
        suffixes.pop()
    fmt = suffixes[-1] if suffixes else ""
    if fmt not in FORMATS:
        raise ValueError(f"{path}: unknown table format '{fmt or path.name}'; use one of: {', '.join(FORMATS)}")
    return fmt


def read_table(path: Path) -> pd.DataFrame:
    """Read a csv / tsv / jsonl / json table; empty cells stay empty strings (never NaN floats)."""
    import pandas as pd

    fmt = table_format(path)
    try:
        if fmt in (".csv", ".tsv"):
            df = pd.read_csv(path, sep="\t" if fmt == ".tsv" else ",", keep_default_na=False, na_values=[])
        else:
            df = pd.read_json(path, lines=fmt == ".jsonl", dtype=False)
    except pd.errors.EmptyDataError:
        raise ValueError(f"{path}: file is empty") from None
    except (pd.errors.ParserError, UnicodeDecodeError, ValueError, OSError) as e:
        raise ValueError(f"{path}: cannot read as {fmt[1:]} ({type(e).__name__}: {str(e).splitlines()[0][:150]})") \
            from None
    if len(df) == 0:
        raise ValueError(f"{path}: no rows")
    return df


def _column(df: pd.DataFrame, name: str, source: str, what: str) -> pd.Series:
    if name not in df.columns:
        raise ValueError(f"{source}: no column '{name}' (data.{what}); it has: {', '.join(map(str, df.columns))}")
    return df[name]


def texts_of(col: pd.Series, source: str) -> list[str]:
    """The text column as a list of str; a missing value is refused naming its row (1-based)."""
    out = []
    for i, v in enumerate(col.tolist()):
        if v is None or (isinstance(v, float) and np.isnan(v)):
            raise ValueError(f"{source}: row {i + 1} has no text in column '{col.name}'")
        out.append(v if isinstance(v, str) else str(v))
    return out


@DATASETS.register("csv")
@declare("text", path=None, text_column=None, label_column=None, split_column=None, splits=None,
         class_names=None, num_classes=count, as_ood=flag)
def load_text_table(cfg: dict, seed: int) -> DataBundle:
    path = user_path(cfg, "csv", "FILE")
    source = str(path)
    df = read_table(path)
    text_col = cfg.get("text_column") or "text"
    texts = texts_of(_column(df, text_col, source, "text_column"), source)
    label_col = cfg.get("label_column", "label")
    y = names = mapping = None
    order = list(cfg.get("class_names") or []) or None
    if label_col and (label_col in df.columns or not is_ood(cfg)):
        y, names, mapping = encode_labels(_column(df, label_col, source, "label_column").to_numpy(), source,
                                          label_col, order=order)
    elif not is_ood(cfg):
        raise ValueError(f"data=csv needs data.label_column (columns of {source}: {', '.join(map(str, df.columns))})")
    given = None
    if cfg.get("split_column"):
        col = cfg["split_column"]
        given = split_names(_column(df, col, source, "split_column").tolist(), source, col)
    return build_bundle("csv", source, "text", texts, y, cfg, seed, given_splits=given,
                        class_names=order or names, label_mapping=mapping,
                        info={"source": f"{table_format(path)[1:]} {source} ({len(texts)} rows)"})
