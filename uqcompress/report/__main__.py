"""``python -m uqcompress.report DIR [DIR ...]``: a run's page, or a sweep's summary, plots and page.

- One DIR that is a run folder (it holds ``results.json``): (re)writes that run's ``report.html`` in it.
- Otherwise (a sweep folder, or several folders): writes ``summary.csv``, ``summary.md``, the sweep's PNG plots and
  ``report.html`` into ``--out`` (default ``<first DIR>/report/``), a folder of its own: never a run's folder.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path


def main(argv: list[str] | None = None) -> int:
    from uqcompress.report.html import run_page
    from uqcompress.report.results import RESULTS
    from uqcompress.report.summary import DEFAULT_SORT, write_report

    p = argparse.ArgumentParser(prog="python -m uqcompress.report", description=__doc__.splitlines()[0],
                                epilog="Open the printed report.html in a browser: it is one self-contained file.")
    p.add_argument("dirs", nargs="+", type=Path, help="a sweep folder, run folder(s), or several sweep folders")
    p.add_argument("--out", type=Path, default=None,
                   help="folder for a sweep's report (default: <first DIR>/report); never inside a run folder")
    p.add_argument("--n-boot", type=int, default=1000,
                   help="bootstrap resamples for runs whose results.json has no intervals yet (0 = none)")
    p.add_argument("--sort", default=DEFAULT_SORT, metavar="KEY",
                   help="rank a sweep's runs by this results key (default: %(default)s; higher-is-better metrics such "
                        "as compressed.accuracy rank descending, the others ascending)")
    args = p.parse_args(argv)
    try:
        if len(args.dirs) == 1 and (args.dirs[0] / RESULTS).is_file() and args.out is None:
            paths = [run_page(args.dirs[0])]
        else:
            paths = write_report(args.dirs, args.out, n_boot=args.n_boot, sort=args.sort)
    except (FileNotFoundError, ValueError) as e:
        print(f"uqcompress.report: error: {e}", file=sys.stderr)
        return 2
    for path in paths:
        print(path)
    return 0


if __name__ == "__main__":
    sys.exit(main())
