"""A real sweep of the embedded default (shrunk) through the report, and its pages in headless Chromium.

The sweep: quant=int8,prune_global_l1 x selector.target=0.8,0.9 (4 jobs, one small CNN trained once). Chromium is
Debian's ``chromium`` (``apt-get install -y chromium``; .ci/run installs it): without it the page tests skip, saying
how to install it. The sweep page's screenshot is kept under the test's tmp folder and copied to
``tests/artifacts/sweep_report.png`` (ignored by git; docs/sweep_report.png in the README was made from it).
"""
from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

import chromium

ROOT = Path(__file__).resolve().parents[2]

SWEEP = ["--multirun", "quant=int8,prune_global_l1", "selector.target=0.8,0.9", "limit=300", "fit_limit=300",
         "ood.limit=200", "model.epochs=4", "model.batch_size=32", "threads=1", "progress=false", "latency.repeats=2"]
ARTIFACTS = ROOT / "tests" / "artifacts"
needs_chromium = pytest.mark.skipif(not chromium.available(),
                                    reason=f"headless Chromium not found; install it: {chromium.INSTALL}")


def python_m(module: str, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", module, *args], cwd=ROOT, capture_output=True, text=True,
                          env={**os.environ, "PYTHONPATH": str(ROOT), "CI": "true"}, timeout=900)


def report(*args: str) -> subprocess.CompletedProcess:
    return python_m("uqcompress.report", *args)


@pytest.fixture(scope="module")
def sweep(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("sweep20")
    r = python_m("uqcompress", *SWEEP, f"cache_dir={root / 'cache'}", f"hydra.sweep.dir={root / 'sweep'}")
    assert r.returncode == 0, r.stderr[-3000:]
    rep = report(str(root / "sweep"))
    assert rep.returncode == 0, rep.stderr
    return root / "sweep"


def runs(sweep: Path) -> dict[str, dict]:
    return {str(p.parent.relative_to(sweep)): json.loads(p.read_text()) for p in sweep.glob("*/results.json")}


@pytest.mark.slow
def test_target_sweep_gives_distinguishable_rows_labels_and_provenance(sweep):
    summary = pd.read_csv(sweep / "report" / "summary.csv")
    assert len(summary) == 4 and summary["label"].nunique() == 4
    assert set(summary["label"]) == {f"quant={q}, selector.target={t}" for q in ("int8", "prune_global_l1")
                                     for t in (0.8, 0.9)}
    assert sorted(summary["config.selector.target"]) == [0.8, 0.8, 0.9, 0.9]
    for folder, res in runs(sweep).items():
        target = float(folder.split("selector.target=")[1].split(",")[0])
        assert res["config.selector.target"] == target and res["config.selector"] == "coverage"
        assert f"selector.target={target}" in res["run.overrides"] and res["config.model.epochs"] == 4
        assert res["compressed.coverage_ci_low"] <= res["compressed.coverage"] <= res["compressed.coverage_ci_high"]
        assert res["run.torch_version"] and res["run.started_at"].endswith("Z") and res["run.duration_s"] > 0
        assert (sweep / folder / "report.html").is_file()
        pred = pd.read_csv(sweep / folder / "predictions.csv")
        assert pred["id"].is_unique and {"label_name", "compressed_pred_name"} <= set(pred.columns)
    # the two targets of one scheme are two rows that differ where the target acts: the coverage
    int8 = summary[summary["config.quant"] == "int8"].set_index("config.selector.target")
    assert int8.loc[0.8, "compressed.coverage"] < int8.loc[0.9, "compressed.coverage"]


@pytest.mark.slow
def test_report_writes_only_its_own_folder(sweep):
    def snapshot():
        return {p: hashlib.sha256(p.read_bytes()).hexdigest() for p in sweep.rglob("*")
                if p.is_file() and p.relative_to(sweep).parts[0] != "report"}

    before = snapshot()
    rep = report(str(sweep))
    assert rep.returncode == 0, rep.stderr
    assert snapshot() == before
    assert all(Path(line).parent == sweep / "report" for line in rep.stdout.split())
    one = next(sweep.glob("*quant=int8,*"))
    bad = report(str(sweep), "--out", str(one / "report"))
    assert bad.returncode == 2 and "inside the run folder" in bad.stderr


@pytest.mark.slow
@needs_chromium
def test_sweep_page_loads_without_console_errors_and_shows_every_run(sweep, tmp_path):
    summary = pd.read_csv(sweep / "report" / "summary.csv")
    with chromium.Browser(tmp_path / "profile", width=1400, height=1000) as b:
        b.open((sweep / "report" / "report.html").as_uri())
        assert b.evaluate("document.documentElement.getAttribute('data-ready')") == "1"  # the script ran to its end
        rows = b.evaluate("Array.from(document.querySelector('table.sortable').tBodies[0].rows)"
                          ".map(r => r.cells[1].textContent)")
        assert rows == summary["label"].tolist()  # ranked by flips, fewest first (the default --sort)
        assert summary["compressed.flips"].is_monotonic_increasing
        marks = b.evaluate("Array.from(document.querySelector('table.sortable').tBodies[0].rows)"
                           ".map(r => r.cells[0].textContent)")
        assert "★ best" in marks[0] and all("★" not in m for m in marks[1:])
        assert ["◆ Pareto" in m for m in marks] == summary["pareto"].tolist() and summary["pareto"].any()
        # the metric columns fit the page: no horizontal scroll at 1400 px
        assert b.evaluate("document.querySelector('table.runs').getBoundingClientRect().right") <= 1400
        assert b.evaluate("document.documentElement.scrollWidth") <= 1400
        heads = b.evaluate("Array.from(document.querySelector('table.sortable').tHead.rows[0].cells)"
                           ".map(c => c.textContent)")
        assert "size" in heads and "rank" in heads
        shot = b.screenshot(tmp_path / "sweep_report.png")  # as opened (README: docs/sweep_report.png)
        b.screenshot(tmp_path / "sweep_report_full.png", full_page=True)
        col = heads.index("coverage")
        b.evaluate(f"document.querySelector('table.sortable').tHead.rows[0].cells[{col}].click()")
        shown = b.evaluate("Array.from(document.querySelector('table.sortable').tBodies[0].rows)"
                           f".map(r => Number(r.cells[{col}].getAttribute('data-v')))")
        assert shown == sorted(summary["compressed.coverage"])
        assert b.evaluate("Array.from(document.images).every(i => i.complete && i.naturalWidth > 0)")
        assert b.evaluate("document.images.length") >= 8  # every figure is inline
        assert b.problems() == []
    ARTIFACTS.mkdir(exist_ok=True)
    shutil.copy(shot, ARTIFACTS / "sweep_report.png")
    shutil.copy(tmp_path / "sweep_report_full.png", ARTIFACTS / "sweep_report_full.png")


@pytest.mark.slow
@needs_chromium
def test_run_page_shows_its_flipped_digits(sweep, tmp_path):
    run = next(sweep.glob("*quant=prune_global_l1,*"))
    pred = pd.read_csv(run / "predictions.csv")
    test = pred[pred.split == "test"]
    n_flips = int(((test.baseline_pred == test.label) != (test.compressed_pred == test.label)).sum())
    assert n_flips > 0
    with chromium.Browser(tmp_path / "profile") as b:
        b.open((run / "report.html").as_uri())
        assert b.evaluate("document.querySelectorAll('img.thumb').length") == min(n_flips, 60)
        assert b.evaluate("Array.from(document.images).every(i => i.complete && i.naturalWidth > 0)")
        assert "Flipped examples" in b.evaluate("document.body.innerText")
        assert b.problems() == []


@needs_chromium
def test_hostile_labels_and_errors_stay_text(tmp_path):
    """A label or error holding HTML is shown as text: no element is created from it, nothing runs."""
    from test_summary import fake_run

    from uqcompress.report.summary import write_report

    sweep = tmp_path / "sweep"
    evil = "<img src=x onerror=console.error('injected')>"
    fake_run(sweep / "a", ["tag=" + evil], {}, seed=1)
    fake_run(sweep / "b", ["tag=plain"], {}, seed=2)
    (sweep / "c").mkdir()
    (sweep / "c" / "failed.json").write_text(json.dumps({"error": evil}))
    write_report([sweep], n_boot=0)
    with chromium.Browser(tmp_path / "profile") as b:
        b.open((sweep / "report" / "report.html").as_uri())
        assert b.evaluate("document.querySelectorAll('img[src=x]').length") == 0
        assert b.evaluate("document.body.innerText").count(evil) >= 2  # the label and the failed job's error
        assert b.problems() == []
