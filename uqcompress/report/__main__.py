"""``python -m uqcompress.report DIR [DIR ...]``: summarise a sweep (or several run dirs) into tables and plots.

Writes ``summary.csv``, ``summary.md`` and PNG plots into ``--out`` (default: the first DIR).
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

from uqcompress.report.summary import write_report


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m uqcompress.report", description=__doc__.splitlines()[0])
    p.add_argument("dirs", nargs="+", type=Path, help="multirun dir(s) or run dir(s) holding results.json")
    p.add_argument("--out", type=Path, default=None, help="where to write the report (default: first DIR)")
    p.add_argument("--n-boot", type=int, default=1000, help="bootstrap resamples for confidence intervals (0 = off)")
    args = p.parse_args(argv)
    try:
        paths = write_report(args.dirs, args.out, n_boot=args.n_boot)
    except (FileNotFoundError, ValueError) as e:
        print(f"uqcompress.report: error: {e}", file=sys.stderr)
        return 2
    for path in paths:
        print(path)
    return 0


if __name__ == "__main__":
    sys.exit(main())
