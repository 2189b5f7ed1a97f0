"""Summarise a compression sweep of a language model on multiple-choice questions (Dutta et al. 2024 style).

Reads every ``results.json`` under the given folders (e.g. one Hydra ``--multirun`` directory) and prints, per
run: accuracy, |delta accuracy|, flips (C->I, I->C), KL over the options, and what the selector does about flips
(flip catch rate = share of flipped questions it abstains on; saved rate = share of abstentions that were errors);
then the Spearman correlation of flips vs KL across the compressed runs (``quant=none`` left out).

    python -m uqcompress --multirun model=smollm2 data=bigbench_mc ood=none data.limit=200 \\
        quant=none,drop_layers,int8_dynamic,int8_weight_only,int4_weight_only
    python scripts/llm_study.py multirun/2026-11-23/21-00-00 [--csv study.csv]
"""
from __future__ import annotations

import argparse
import json
import math
import sys
from pathlib import Path

COLUMNS = [  # (header, results.json key, format)
    ("base acc", "baseline.accuracy", "{:.3f}"),
    ("acc", "compressed.accuracy", "{:.3f}"),
    ("abs Δacc", None, "{:.3f}"),
    ("flips", "compressed.flips", "{:.3f}"),
    ("C→I", "compressed.c2i", "{:.3f}"),
    ("I→C", "compressed.i2c", "{:.3f}"),
    ("KL", "compressed.kl", "{:.4f}"),
    ("coverage", "compressed.coverage", "{:.2f}"),
    ("flip catch", "compressed.flip_catch_rate", "{:.2f}"),
    ("saved", "compressed.saved_rate", "{:.2f}"),
    ("size MB", "compressed.model_size_bytes", "{:.0f}"),
    ("ms/q", "compressed.latency_ms_per_sample", "{:.0f}"),
]


def _num(v) -> float:
    try:
        return float(v)
    except (TypeError, ValueError):
        return float("nan")


def load_runs(paths: list[Path]) -> list[dict]:
    runs = []
    for p in paths:
        files = [p] if p.is_file() else sorted(p.rglob("results.json"))
        for f in files:
            r = json.loads(f.read_text())
            r["_run"] = f.parent.name
            runs.append(r)
    return runs


def row(r: dict) -> list[str]:
    cells = []
    for header, key, fmt in COLUMNS:
        if header == "abs Δacc":
            v = abs(_num(r.get("compressed.accuracy")) - _num(r.get("baseline.accuracy")))
        elif header == "size MB":
            v = _num(r.get(key)) / 1e6
        else:
            v = _num(r.get(key))
        cells.append("—" if math.isnan(v) else fmt.format(v))
    return cells


def spearman(x: list[float], y: list[float]) -> float:
    from scipy.stats import spearmanr

    if len(x) < 3:
        return float("nan")
    return float(spearmanr(x, y).statistic)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("paths", nargs="+", type=Path, help="folders with results.json files (searched recursively)")
    ap.add_argument("--csv", type=Path, help="also write the table as CSV")
    a = ap.parse_args()
    runs = load_runs(a.paths)
    if not runs:
        print(f"no results.json under {', '.join(map(str, a.paths))}", file=sys.stderr)
        return 2
    runs.sort(key=lambda r: (_num(r.get("compressed.flips")), str(r.get("config.quant"))))
    first = runs[0]
    print(f"model {first.get('config.model')} on {first.get('config.data')}: {first.get('n_test')} test questions, "
          f"uncertainty={first.get('config.uncertainty')}, selector={first.get('config.selector')}")
    header = ["scheme", *[c[0] for c in COLUMNS]]
    lines = [header] + [[r["_run"] if r["_run"] not in ("", ".") else str(r.get("config.quant")), *row(r)]
                        for r in runs]
    print("| " + " | ".join(header) + " |")
    print("|" + "---|" * len(header))
    for cells in lines[1:]:
        print("| " + " | ".join(cells) + " |")
    comp = [r for r in runs if r.get("config.quant") != "none"]
    f = [_num(r.get("compressed.flips")) for r in comp]
    k = [_num(r.get("compressed.kl")) for r in comp]
    d = [abs(_num(r.get("compressed.accuracy")) - _num(r.get("baseline.accuracy"))) for r in comp]
    print(f"\nSpearman rho over {len(comp)} compressed runs: flips vs KL = {spearman(f, k):.3f}; "
          f"flips vs abs Δacc = {spearman(f, d):.3f}")
    if a.csv:
        import csv

        with open(a.csv, "w", newline="") as fh:
            csv.writer(fh).writerows(lines)
    return 0


if __name__ == "__main__":
    sys.exit(main())
