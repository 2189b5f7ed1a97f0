"""One self-contained HTML page per run (``report.html`` in its folder) and per sweep (``report/report.html``).

A page needs no server, network or file beside it: plots are PNG data URIs, image inputs are thumbnails from
``thumbnails.json``, tables sort by clicking a header (a few lines of inline JavaScript, no library), and every string
from a run (labels, texts, paths, errors) is escaped with :func:`html.escape`. Open it from ``file://``.

Example:
    >>> from uqcompress.report.html import cell, table
    >>> "&lt;b&gt;" in table(["x"], [[cell("<b>")]])
    True
"""
from __future__ import annotations

import base64
import datetime as _dt
import html
import os
from pathlib import Path
from typing import Any, Iterable, Sequence

import pandas as pd

from uqcompress.cache import atomic_write_text
from uqcompress.report.examples import flipped, read_thumbnails
from uqcompress.report.formatting import decimals_for, fmt, fmt_interval, is_missing
from uqcompress.report.intervals import HIGH, LOW
from uqcompress.report.results import PREDICTIONS, check_numbers, predictions_problem, read_results

PAGE = "report.html"
RUN_PLOTS = [("risk_coverage.png", "Risk–coverage"), ("reliability.png", "Reliability"),
             ("confidence_id_vs_ood.png", "Confidence, ID vs OOD")]
SWEEP_EXAMPLES = 12  # flipped examples shown per run on a sweep page (each run's own page shows more)

CSS = """
body{font:14px/1.45 system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;margin:0 auto;max-width:1400px;
 padding:16px 24px;color:#1d1d1f}
h1{font-size:22px;margin:4px 0 2px}
h2{font-size:17px;margin:26px 0 8px;border-bottom:1px solid #ddd;padding-bottom:3px}
.meta{color:#555;font-size:13px}
code,pre{font:12px ui-monospace,SFMono-Regular,Menlo,monospace;background:#f4f4f6;padding:1px 4px;border-radius:3px}
pre{padding:8px;white-space:pre-wrap;word-break:break-all}
table{border-collapse:collapse;margin:6px 0 10px;font-size:13px}
th,td{border:1px solid #ddd;padding:3px 7px;vertical-align:top}
th{background:#f4f4f6;text-align:left;white-space:nowrap}
td.num{text-align:right;font-variant-numeric:tabular-nums;white-space:nowrap}
table.sortable th{cursor:pointer;user-select:none}
table.sortable th:after{content:" \\2195";color:#aaa;font-size:11px}
table.sortable th[aria-sort=ascending]:after{content:" \\2191";color:#333}
table.sortable th[aria-sort=descending]:after{content:" \\2193";color:#333}
.ci{color:#777;font-size:11px}.bad{color:#b00020}.muted{color:#888}
figure{margin:10px 0 18px}figure img{max-width:100%;border:1px solid #eee}figcaption{color:#555;font-size:12px}
img.thumb{image-rendering:pixelated;display:block}td.input{max-width:480px}
.verdict{font-size:15px;font-weight:600;padding:6px 10px;border-left:4px solid #b00020;background:#fbf3f4}
.verdict.ok{border-left-color:#1b7f3b;background:#f1f8f3}
table.runs{font-size:12px}table.runs th,table.runs td{padding:2px 4px}
table.runs td.num{white-space:normal}table.runs .ci{display:block;font-size:10px;line-height:1.2}
table.runs th{white-space:normal;overflow-wrap:break-word}.nw{white-space:nowrap}table.runs td{max-width:170px}
.best{color:#1b7f3b;font-weight:600;white-space:nowrap}.pareto{color:#1f5fbf;white-space:nowrap}
h3.dataset{font-size:15px;margin:16px 0 4px}
details{margin:4px 0}summary{cursor:pointer}.scroll{overflow-x:auto}
"""

# Click a header to sort its table (numbers by data-v, else text; empty cells last); click again to reverse.
SORT_JS = """
(function () {
  function key(td) {
    var v = td.getAttribute("data-v");
    if (v === null) { v = td.textContent.trim(); }
    if (v === "") { return null; }
    var n = Number(v);
    return isNaN(n) ? v.toLowerCase() : n;
  }
  function compare(a, b) {
    if (a === b) { return 0; }
    if (typeof a !== typeof b) { a = String(a); b = String(b); }
    return a < b ? -1 : 1;
  }
  var tables = document.querySelectorAll("table.sortable");
  Array.prototype.forEach.call(tables, function (table) {
    var heads = table.tHead.rows[0].cells;
    Array.prototype.forEach.call(heads, function (th, col) {
      th.addEventListener("click", function () {
        var asc = th.getAttribute("aria-sort") !== "ascending";
        Array.prototype.forEach.call(heads, function (h) { h.removeAttribute("aria-sort"); });
        th.setAttribute("aria-sort", asc ? "ascending" : "descending");
        var body = table.tBodies[0];
        var rows = Array.prototype.slice.call(body.rows);
        rows.sort(function (r, s) {
          var a = key(r.cells[col]), b = key(s.cells[col]);
          if (a === null || b === null) { return (a === null) - (b === null); }
          return asc ? compare(a, b) : compare(b, a);
        });
        rows.forEach(function (r) { body.appendChild(r); });
      });
    });
  });
  document.documentElement.setAttribute("data-ready", "1");
})();
"""


def esc(v: Any) -> str:
    return html.escape(str(v), quote=True)


class Cell:
    """A table cell: ``body`` is HTML that is already safe (built with :func:`esc`), ``sort`` its raw sort value."""

    __slots__ = ("body", "sort", "num")

    def __init__(self, body: str, sort: Any = None, num: bool = False) -> None:
        self.body, self.sort, self.num = body, sort, num


def cell(text: Any) -> Cell:
    """A cell holding plain text (escaped)."""
    return Cell(esc("" if is_missing(text) else text))


def num_cell(v: Any, decimals: int = 4, low: Any = None, high: Any = None) -> Cell:
    """A number (sorted by its value), with its interval in small grey type when given."""
    ci = fmt_interval(low, high, decimals)
    body = esc(fmt(v, decimals)) + (f' <span class="ci">{esc(ci)}</span>' if ci else "")
    sort = "" if is_missing(v) or isinstance(v, str) else float(v)
    return Cell(body, sort, num=True)


def table(headers: Sequence[str], rows: Iterable[Sequence[Cell]], sortable: bool = True) -> str:
    head = "".join(f"<th>{esc(h)}</th>" for h in headers)
    body = []
    for row in rows:
        tds = []
        for c in row:
            attrs = (' class="num"' if c.num else "") + ("" if c.sort is None else f' data-v="{esc(c.sort)}"')
            tds.append(f"<td{attrs}>{c.body}</td>")
        body.append("<tr>" + "".join(tds) + "</tr>")
    cls = ' class="sortable"' if sortable else ""
    return (f'<div class="scroll"><table{cls}><thead><tr>{head}</tr></thead><tbody>{"".join(body)}</tbody>'
            "</table></div>")


def png_uri(path: Path) -> str:
    return "data:image/png;base64," + base64.b64encode(Path(path).read_bytes()).decode("ascii")


def figure(path: Path, caption: str) -> str:
    return (f'<figure><img src="{png_uri(path)}" alt="{esc(caption)}"><figcaption>{esc(caption)}</figcaption>'
            "</figure>")


def page(title: str, body: str) -> str:
    return ("<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
            "<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">"
            f"<title>{esc(title)}</title><style>{CSS}</style></head><body>\n{body}\n"
            f"<script>{SORT_JS}</script></body></html>\n")


# ---- pieces shared by the run and sweep pages ------------------------------------------------------------------
def _input_cell(row: pd.Series, thumbs: dict[str, str]) -> Cell:
    uri = thumbs.get(str(row.get("id", "")))
    if uri:
        path = row.get("input")  # an image's file, when it has one: on hover
        title = "" if is_missing(path) else f' title="{esc(path)}"'
        return Cell(f'<img class="thumb" src="{esc(uri)}" alt="{esc(row.get("id", "input"))}"{title}>', row.get("id"))
    text = row.get("input")
    c = cell(text)
    c.body = f'<span class="input">{c.body}</span>'
    return c


def _name(row: pd.Series, col: str) -> str:
    name = row.get(f"{col}_name")
    value = row.get(col)
    return str(value) if is_missing(name) or str(name) == str(value) else f"{name} ({value})"


def examples_table(pred: pd.DataFrame, thumbs: dict[str, str], limit: int) -> str:
    rows = flipped(pred, limit=None)
    if not len(rows):
        return '<p class="muted">No flips: every test answer is as correct (or wrong) as the baseline\'s.</p>'
    n_c2i = int((rows["flip"] == "C→I").sum())
    intro = (f"<p>{len(rows)} flipped test inputs ({n_c2i} C→I, {len(rows) - n_c2i} I→C)"
             + (f"; the first {limit} shown" if len(rows) > limit else "") + ".</p>")
    out = []
    for _, r in rows.head(limit).iterrows():
        accepted = bool(r["compressed_accepted"])
        out.append([cell(r.get("id", r["index"])), cell(r["flip"]), _input_cell(r, thumbs), cell(_name(r, "label")),
                    cell(_name(r, "baseline_pred")), num_cell(float(r["baseline_confidence"])),
                    cell(_name(r, "compressed_pred")), num_cell(float(r["compressed_confidence"])),
                    Cell("answered" if accepted else '<span class="muted">abstained</span>', int(accepted))])
    return intro + table(["id", "flip", "input", "label", "baseline answer", "baseline conf.", "compressed answer",
                          "compressed conf.", "selector"], out)


def _plain(v: Any) -> str:
    """A config or provenance value as written (shortest float form, lists comma-separated, null)."""
    if v is None or (isinstance(v, float) and v != v):
        return "null"
    if isinstance(v, bool):
        return str(v).lower()
    if isinstance(v, (list, tuple)):
        return "[" + ", ".join(map(_plain, v)) + "]"
    return str(v)


def _kv_table(items: Iterable[tuple[str, Any]]) -> str:
    return table(["key", "value"], [[cell(k), cell(_plain(v))] for k, v in items])


# ---- the run page ------------------------------------------------------------------------------------------------
def run_title(res: dict[str, Any]) -> str:
    """What was compared: ``model × quant on data``, or for stored outputs the two models (as lm-eval names them, else
    the folders) on the tasks."""
    how = f"uncertainty={res.get('config.uncertainty', '?')}, selector={res.get('config.selector', '?')}"
    source = res.get("config.outputs")
    if isinstance(source, str) and source != "none" and "config.model" not in res:
        base = res.get("outputs.baseline_model") or res.get("config.baseline") or "baseline"
        comp = res.get("outputs.compressed_model") or res.get("config.compressed") or "compressed"
        tasks = res.get("outputs.tasks")
        tasks = [str(t) for t in tasks] if isinstance(tasks, list) else []
        on = (", ".join(tasks) if len(tasks) <= 3 else f"{', '.join(tasks[:3])} … ({len(tasks)} tasks)") or "?"
        return f"{base} vs {comp} on {on} ({source} outputs; {how})"
    return f"{res.get('config.model', '?')} × {res.get('config.quant', '?')} on {res.get('config.data', '?')} ({how})"


def _task_table(res: dict[str, Any]) -> str:
    """Stored outputs: one row per task and one for all, over every question (calibration + test)."""
    from uqcompress.report.table import SCOPE_COLS

    if "all.n" not in res:
        return ""
    tasks = sorted({k[len("task."):-len(".n")] for k in res if k.startswith("task.") and k.endswith(".n")})
    cols = [(k, label) for k, label in SCOPE_COLS if f"all.{k}" in res]
    rows = [[cell(name)] + [num_cell(res.get(f"{scope}.{k}"), 0 if k == "n" else 4) for k, _ in cols]
            for name, scope in [(t, f"task.{t}") for t in tasks] + [("all", "all")]]
    note = " (acc: lm-eval's acc, norm: acc_norm)" if "all.baseline.accuracy_norm" in res else ""
    return (f"<h2>Per task (every question: calibration + test){esc(note)}</h2>"
            + table(["task"] + [label for _, label in cols], rows))


def _metric_rows(res: dict[str, Any]) -> tuple[list[list[Cell]], list[list[Cell]]]:
    from uqcompress.report.table import CHANGE_ROWS, ROWS

    def ci(key: str) -> tuple[Any, Any]:
        return res.get(key + LOW), res.get(key + HIGH)

    both = []
    for key, label in ROWS:
        b, c = res.get(f"baseline.{key}"), res.get(f"compressed.{key}")
        if (b is None or is_missing(b)) and (c is None or is_missing(c)):
            continue
        d = decimals_for([b, c])
        if key == "model_size_bytes":
            delta = cell(f"×{c / b:.2f}" if b and c else "—")
        else:
            delta = num_cell(c - b if isinstance(b, (int, float)) and isinstance(c, (int, float)) else None, d)
        both.append([cell(label), num_cell(b, d, *ci(f"baseline.{key}")), num_cell(c, d, *ci(f"compressed.{key}")),
                     delta])
    change = [[cell(label), num_cell(res[f"compressed.{key}"], 4, *ci(f"compressed.{key}"))]
              for key, label in CHANGE_ROWS if f"compressed.{key}" in res]
    return both, change


def _provenance(res: dict[str, Any]) -> str:
    config = sorted((k, v) for k, v in res.items() if k.startswith("config."))
    run = sorted((k, v) for k, v in res.items() if k.startswith(("run.", "ci.")))
    command = res.get("run.command")
    rerun = (f"<p>Rerun: <code>{esc(command)}</code></p>" if command else "")
    return (f"<h2>Provenance</h2>{rerun}<details><summary>config ({len(config)} keys)</summary>"
            f"{_kv_table(config)}</details><details><summary>software, code and machine</summary>{_kv_table(run)}"
            "</details>")


def _header(res: dict[str, Any]) -> str:
    parts = []
    if res.get("run.started_at"):
        parts.append(f"started {res['run.started_at']}")
    if not is_missing(res.get("run.duration_s")):
        parts.append(f"took {float(res['run.duration_s']):.1f} s")
    if res.get("run.hostname"):
        parts.append(f"on {res['run.hostname']} ({res.get('run.cpu_count', '?')} CPUs)")
    devices = {res.get("baseline.device"), res.get("compressed.device")} - {None}
    if devices:
        parts.append("device " + " / ".join(sorted(map(str, devices))))
    if res.get("run.git_commit"):
        dirty = " (dirty)" if res.get("run.git_dirty") is True else ""  # null (unknown) reads as NaN: not dirty
        parts.append(f"git {str(res['run.git_commit'])[:10]}{dirty}")
    parts.append(f"n test {fmt(res.get('n_test'))}, n OOD {fmt(res.get('n_ood'))}")
    return f'<p class="meta">{esc(" · ".join(parts))}</p>'


def _shown_numbers() -> list[str]:
    """The results.json keys the run page shows as numbers (with their intervals)."""
    from uqcompress.report.table import CHANGE_ROWS, ROWS

    keys = [f"{who}.{k}" for k, _ in ROWS for who in ("baseline", "compressed")]
    keys += [f"compressed.{k}" for k, _ in CHANGE_ROWS]
    return keys + [k + s for k in keys for s in (LOW, HIGH)]


def _verdict(res: dict[str, Any]) -> str:
    from uqcompress.report.verdict import verdict

    line = verdict(res)
    cls = "verdict ok" if line.startswith("CAN ") else "verdict"
    return f'<p class="{cls}" id="verdict">{esc(line)}</p>'


def _group_table(res: dict[str, Any]) -> list[str]:
    """Per MMLU subject / knowledge relation / task (``<kind>.<name>.*``, :mod:`uqcompress.metrics.groups`)."""
    from uqcompress.metrics.groups import group_names

    kind = res.get("group_by")
    names = group_names(res, kind) if isinstance(kind, str) else []
    if not names:
        return []
    cols = [("n", 0), ("baseline.accuracy", 3), ("compressed.accuracy", 3), ("flips", 3), ("c2i", 3), ("i2c", 3),
            ("kl", 4)]
    rows = [[cell(name)] + [num_cell(res.get(f"{kind}.{name}.{k}"), d, res.get(f"{kind}.{name}.{k}{LOW}"),
                                     res.get(f"{kind}.{name}.{k}{HIGH}")) for k, d in cols] for name in names]
    return [f"<h2>Per {esc(kind)} (test split)</h2>",
            table([kind, "n", "baseline accuracy", "compressed accuracy", "flips", "C→I", "I→C", "KL"], rows)]


def run_page(run_dir: str | Path, limit: int = 60) -> Path:
    """Write ``report.html`` into a run folder from its results.json, predictions.csv, plots and thumbnails.

    A value that is not a number where the page shows one is one line (:func:`check_numbers`); a predictions.csv
    that does not belong to the results.json (its sha256 differs) is not read: one warning, and the page says so
    instead of listing another run's flipped examples (as the sweep report does)."""
    import logging

    run_dir = Path(run_dir)
    res = read_results(run_dir)
    check_numbers(run_dir, res, _shown_numbers())
    title = run_title(res)
    both, change = _metric_rows(res)
    body = [f"<h1>{esc(title)}</h1>", _verdict(res), _header(res), "<h2>Baseline vs compressed (test split)</h2>",
            table(["metric", "baseline", "compressed", "Δ"], both),
            "<h2>What changed</h2>", table(["metric", "compressed vs baseline"], change), _task_table(res),
            '<p class="meta">Grey brackets: 95% bootstrap intervals over the test samples (models and threshold fixed).'
            "</p>"]
    body += _group_table(res)
    figs = [figure(run_dir / name, caption) for name, caption in RUN_PLOTS if (run_dir / name).is_file()]
    if figs:
        body += ["<h2>Plots</h2>"] + figs
    bad = predictions_problem(run_dir, res)
    if bad:
        logging.getLogger(__name__).warning("uqcompress.report: %s; its flipped examples are not shown", bad)
        body += ["<h2>Flipped examples</h2>", f'<p class="bad">Not shown: {esc(bad)}.</p>']
    elif (run_dir / PREDICTIONS).is_file():
        body += ["<h2>Flipped examples</h2>",
                 examples_table(pd.read_csv(run_dir / PREDICTIONS), read_thumbnails(run_dir), limit)]
    body.append(_provenance(res))
    path = run_dir / PAGE
    atomic_write_text(path, page(title, "\n".join(body)))
    return path


def write_run_report(run_dir: str | Path, result: Any) -> Path | None:
    """After a run: ``thumbnails.json`` of its flipped image inputs, then its ``report.html``.

    Called once ``results.json`` is written; a failure here is logged and leaves the run's results as they are
    (``python -m uqcompress.report RUN_DIR`` writes the page again).
    """
    import logging

    from uqcompress.report.examples import write_thumbnails

    try:
        test = getattr(result, "inputs", {}).get("test")
        if test is not None:
            write_thumbnails(run_dir, result.predictions, test.x)
        return run_page(run_dir)
    except Exception as e:  # the page is a view of results that are already safe on disk
        logging.getLogger(__name__).error("could not write %s (%s: %s); the results are complete, "
                                          "`python -m uqcompress.report %s` retries", Path(run_dir) / PAGE,
                                          type(e).__name__, e, run_dir)
        return None


# ---- the sweep page ----------------------------------------------------------------------------------------------
def _link(target: Path, base: Path, text: str) -> str:
    if not target.is_file():
        return esc(text)
    rel = Path(os.path.relpath(target.resolve(), base.resolve())).as_posix()
    return f'<a href="{esc(rel)}">{esc(text)}</a>'


#: the metric columns of the sweep page's table (size: a ratio with bits and sparsity, its own column)
PAGE_COLS = ["baseline.accuracy", "compressed.accuracy", "compressed.flips", "compressed.c2i", "compressed.i2c",
             "compressed.kl", "compressed.coverage", "compressed.selective_risk", "compressed.saved_rate",
             "compressed.flip_catch_rate", "compressed.ood_auroc", "compressed.ece", "compressed.aurc",
             "compressed.speedup"]


def _size_cell(r: pd.Series) -> Cell:
    """Compressed size as a ratio of the baseline's, with the weight bits and the sparsity."""
    ratio = r.get("size_ratio")
    parts = [] if is_missing(ratio) else [f"×{float(ratio):.2f}"]
    bits = r.get("compressed.bits")
    if not is_missing(bits):
        parts.append(f"{float(bits):g}-bit")
    sparsity = r.get("compressed.sparsity")
    if not is_missing(sparsity) and float(sparsity) >= 0.005:
        parts.append(f"{100 * float(sparsity):.0f}% sparse")
    body = "<br>".join(f'<span class="nw">{esc(p)}</span>' for p in parts) or "—"
    return Cell(body, "" if is_missing(ratio) else float(ratio), num=True)


def _rank_cell(r: pd.Series, sort: str) -> Cell:
    from uqcompress.report.summary import short

    marks = []
    if r.get("best") is True:
        marks.append(f'<span class="best" title="best by {esc(short(sort))}">★ best</span>')
    if r.get("pareto") is True:
        marks.append('<span class="pareto" title="Pareto set: no run is both smaller and has fewer flips">'
                     "◆ Pareto</span>")
    return Cell(f"{int(r['rank'])} " + " ".join(marks), int(r["rank"]), num=True)


def _summary_table(summary: pd.DataFrame, out: Path) -> str:
    from uqcompress.report.summary import column_decimals, short

    factors = summary.attrs.get("factors", [])
    sort = summary.attrs.get("sort")
    ranked = sort is not None and "rank" in summary.columns
    cols = [c for c in PAGE_COLS if c in summary.columns]
    dec = column_decimals(summary, cols)
    rows = []
    for _, r in summary.iterrows():
        row = [_rank_cell(r, sort)] if ranked else []
        row.append(Cell(_link(Path(r["run"]) / PAGE, out, r["label"]), r["label"]))
        for f in factors:
            v = r[f"config.{f}"]  # as given (0.85 stays 0.85), sorted as a number when it is one
            row.append(Cell(esc(_plain(v)), v, num=True) if isinstance(v, (int, float)) and not is_missing(v)
                       else cell(v))
        row += [num_cell(r[c], dec[c], r.get(c + LOW), r.get(c + HIGH)) for c in cols]
        if "size_ratio" in summary.columns:
            row.append(_size_cell(r))
        rows.append(row)
    heads = (["rank"] if ranked else []) + ["run"] + list(factors) + [short(c).replace("_", " ") for c in cols]
    heads += ["size"] if "size_ratio" in summary.columns else []
    return table(heads, rows).replace('<table class="sortable">', '<table class="sortable runs">', 1)


def _runs_section(summary: pd.DataFrame, out: Path) -> str:
    """The runs table, one per data set when the runs measured several (with a line saying so)."""
    from uqcompress.report.summary import datasets_line, short

    sort = summary.attrs.get("sort")
    head = ""
    if sort:
        order = "ascending" if summary.attrs.get("ascending") else "descending"
        head = (f'<p class="meta">Ranked by {esc(short(sort))} ({order}; <code>--sort KEY</code> picks another). '
                "★ best by it; ◆ the Pareto set of size vs flips: no other run is both smaller and has fewer flips. "
                "Size: compressed / baseline bytes, weight bits, sparsity.</p>")
    mixed = datasets_line(summary)
    if not mixed:
        return head + _summary_table(summary, out)
    parts = [f'<p class="bad">{esc(mixed[0].upper() + mixed[1:])}.</p>', head]
    for d in dict.fromkeys(summary["dataset"]):
        part = summary[summary["dataset"] == d]
        part.attrs = dict(summary.attrs)
        parts += [f'<h3 class="dataset">Data set: {esc(d)} ({len(part)} run{"s" if len(part) != 1 else ""})</h3>',
                  _summary_table(part, out)]
    return "".join(parts)


def _common_provenance(summary: pd.DataFrame) -> str:
    """Keys equal in every run (versions, commit, machine, the config not swept) and the per-run timing."""
    results = [read_results(r) for r in summary["run"]]
    keys = sorted({k for res in results for k in res if k.startswith(("config.", "run.", "ci."))})
    skip = {"run.started_at", "run.duration_s", "run.overrides", "run.command"}
    common = [(k, results[0].get(k)) for k in keys if k not in skip
              and len({repr(res.get(k)) for res in results}) == 1]
    timing = [[cell(label), cell(res.get("run.started_at")), num_cell(res.get("run.duration_s"), 1),
               cell(res.get("run.hostname")), cell(str(res.get("run.git_commit") or "")[:10]),
               cell(res.get("run.command"))] for label, res in zip(summary["label"], results)]
    return (f"<details><summary>the same in every run ({len(common)} keys)</summary>{_kv_table(common)}</details>"
            "<details><summary>per run: when, where, how to rerun</summary>"
            f"{table(['run', 'started (UTC)', 'seconds', 'host', 'git', 'rerun'], timing)}</details>")


#: the most runs whose flipped examples the sweep page lists (each run's own report.html has them)
MAX_EXAMPLE_RUNS = 24


def sweep_page(out: str | Path, summary: pd.DataFrame, failed: pd.DataFrame, figures: Sequence[Path]) -> Path:
    """Write the sweep's ``report.html`` into the report folder ``out``."""
    from uqcompress.report.summary import correlation_line

    out = Path(out)
    factors = summary.attrs.get("factors", [])
    n_runs, n_failed = len(summary), len(failed)
    title = f"uqcompress sweep: {n_runs} run{'s' if n_runs != 1 else ''}" + (f", {n_failed} failed" if n_failed else "")
    now = _dt.datetime.now(_dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
    body = [f"<h1>{esc(title)}</h1>",
            f'<p class="meta">{esc("swept: " + (", ".join(factors) or "nothing"))} · report written {esc(now)} · '
            f"{esc(str(out.resolve()))}</p>"]
    if n_runs:
        body += ["<h2>Runs</h2>", _runs_section(summary, out), f"<p>{esc(correlation_line(summary))}</p>",
                 '<p class="meta">Click a header to sort. Grey brackets: 95% bootstrap intervals over the test '
                 "samples (models and threshold fixed). Each run's name opens its own page.</p>"]
    if n_failed:
        body += [f'<h2 class="bad">Failed jobs ({n_failed})</h2>',
                 table(["job", "folder", "error"], [[cell(r.label), cell(r.run), cell(r.error)]
                                                   for r in failed.itertuples()])]
    if figures:
        body.append("<h2>Plots</h2>")
        body += [figure(p, p.stem.replace("_", " ")) for p in figures]
    if n_runs:
        body.append("<h2>Flipped examples per run</h2>")
        rows = [r for _, r in summary.iterrows() if isinstance(r.get("predictions"), str)]  # matching files only
        if len(rows) > MAX_EXAMPLE_RUNS:
            body.append(f"<p>{len(rows)} runs: the flipped examples of each are on its own report.html, in its run "
                        f"folder (listed here up to {MAX_EXAMPLE_RUNS} runs).</p>")
            rows = []
        for r in rows:
            run = Path(r["run"])
            pred = pd.read_csv(r["predictions"])
            n = len(flipped(pred, limit=None))
            body.append(f"<details><summary>{esc(r['label'])}: {n} flip{'s' if n != 1 else ''}</summary>"
                        f"{examples_table(pred, read_thumbnails(run), SWEEP_EXAMPLES)}</details>")
        body += ["<h2>Provenance</h2>", _common_provenance(summary)]
    path = out / PAGE
    atomic_write_text(path, page(title, "\n".join(body)))
    return path
