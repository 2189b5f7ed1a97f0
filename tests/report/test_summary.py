"""The sweep report on run folders written by write_results: labels from the swept overrides, failed jobs, its own
folder, honest correlations, digits that tell runs apart, escaped self-contained HTML."""
import hashlib
import json
import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from uqcompress.report.html import run_page
from uqcompress.report.intervals import intervals_from_predictions
from uqcompress.report.results import write_results
from uqcompress.report.summary import (correlation_line, report_folder, summarize, swept_factors, to_markdown,
                                       write_report)


def predictions(seed: int, n: int = 200, flip: float = 0.1) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 3, n)
    b = np.where(rng.random(n) < 0.8, y, rng.integers(0, 3, n))
    c = np.where(rng.random(n) < flip, rng.integers(0, 3, n), b)
    conf = rng.random(n)
    test = pd.DataFrame({"split": "test", "id": [f"test-{i}-0" for i in range(n)], "index": range(n), "label": y,
                         "baseline_pred": b, "compressed_pred": c, "baseline_pmax": conf, "compressed_pmax": conf,
                         "baseline_confidence": conf, "compressed_confidence": conf,
                         "baseline_accepted": conf > 0.1, "compressed_accepted": conf > 0.1,
                         "input": [f"text <{i}>" for i in range(n)]})
    ood = test.head(50).assign(split="ood", label=-1, compressed_confidence=rng.random(50) * 0.5)
    return pd.concat([test, ood], ignore_index=True)


def fake_run(folder: Path, overrides: list[str] | None, metrics: dict, seed: int = 0, ci: bool = True,
             flip: float = 0.1) -> Path:
    folder.mkdir(parents=True)
    pred = predictions(seed, flip=flip)
    m = {"config.model": "small_cnn", "config.quant": "int8", "config.uncertainty": "msp",
         "config.selector": "coverage", "config.data": "mnist", "config.ood": "animal_mnist",
         "compressed.kl": 0.01, "compressed.flips": 0.05, "compressed.accuracy_delta": -0.01,
         "compressed.threshold": 0.1, **metrics}
    if overrides is not None:
        m["run.overrides"] = overrides
    if ci:
        m.update(intervals_from_predictions(pred, n_boot=50))
    write_results(folder, m, pred)
    return folder


def test_swept_factors_from_overrides():
    assert swept_factors([["a=1", "b=2"], ["a=1", "b=3"]]) == ["b"]
    assert swept_factors([["quant=int8", "+seed=1"], ["quant=int8"]]) == ["seed"]
    assert swept_factors([["x=1"], ["x=1"]]) == []


def test_target_sweep_gives_distinguishable_rows_labels_and_a_failed_job(tmp_path):
    sweep = tmp_path / "sweep"
    for t, seed in (("0.9", 1), ("0.8", 2)):
        fake_run(sweep / f"selector.target={t}", ["selector.target=" + t, "limit=300"],
                 {"config.selector.target": float(t), "compressed.coverage": float(t) - 0.01}, seed)
    bad = sweep / "selector.target=1.5"
    (bad / ".hydra").mkdir(parents=True)
    (bad / ".hydra" / "overrides.yaml").write_text("- selector.target=1.5\n- limit=300\n")
    (bad / "failed.json").write_text(json.dumps({"error": "selector.target=1.5 must be in (0, 1] <script>"}))
    summary, failed = summarize(sorted(p for p in sweep.iterdir()), n_boot=0)
    assert summary.attrs["factors"] == ["selector.target"]
    assert summary["label"].tolist() == ["selector.target=0.8", "selector.target=0.9"]  # sorted by value
    assert summary["config.selector.target"].tolist() == [0.8, 0.9]
    assert failed.to_dict("records") == [{"label": "selector.target=1.5", "run": str(bad),
                                          "error": "selector.target=1.5 must be in (0, 1] <script>"}]
    md = to_markdown(summary, failed)
    assert "| selector.target=0.8 |" in md and "| selector.target=0.9 |" in md and "## Failed jobs" in md

    run_page(sweep / "selector.target=0.9")  # one run with its own page (written by the job), one without
    before = {p: hashlib.sha256(p.read_bytes()).hexdigest() for p in sweep.rglob("*") if p.is_file()}
    paths = write_report([sweep], n_boot=0)
    assert all(p.parent == sweep / "report" for p in paths)
    assert {p.name for p in paths} >= {"summary.csv", "summary.md", "report.html", "factor_selector.target.png",
                                       "risk_coverage.png", "reliability.png", "confidence_id_vs_ood.png",
                                       "flips_vs_kl.png", "accuracy_delta_vs_flips.png"}
    after = {p: hashlib.sha256(p.read_bytes()).hexdigest() for p in sweep.rglob("*")
             if p.is_file() and "report" not in p.relative_to(sweep).parts}
    assert after == before  # no run folder was touched
    page = (sweep / "report" / "report.html").read_text()
    assert "&lt;script&gt;" in page and "<script>" not in page.replace("<script>\n(function", "")
    assert page.count("<script") == 1  # the inline sorter only
    assert not re.search(r'(src|href)="(https?:)?//', page)  # nothing loads from a network
    assert "text &lt;" in page  # flipped examples show their (escaped) inputs
    assert '<a href="../selector.target=0.9/report.html">selector.target=0.9</a>' in page  # its own page
    assert ">selector.target=0.8</td>" in page  # no page to link to: the label alone
    assert "Failed jobs (1)" in page


def test_report_folder_is_never_a_run_folder(tmp_path):
    run = fake_run(tmp_path / "sweep" / "a", ["a=1"], {})
    assert report_folder([tmp_path / "sweep"], None, [run]) == tmp_path / "sweep" / "report"
    for bad in (run, run / "report", run / "x" / "y"):
        with pytest.raises(ValueError, match="inside the run folder"):
            report_folder([tmp_path / "sweep"], bad, [run])
    with pytest.raises(ValueError, match="inside the run folder"):
        write_report([run], n_boot=0)  # a lone run folder: its report folder would be inside it


def test_correlation_needs_three_distinct_points_and_says_n(tmp_path):
    s = pd.DataFrame({"compressed.kl": [0.1, 0.1, 0.2, 0.2], "compressed.flips": [0.01, 0.01, 0.03, 0.03]})
    assert correlation_line(s) == ("Spearman ρ(flips, KL): not computed, 2 distinct (KL, flips) points from 4 runs "
                                   "(needs at least 3).")
    s = pd.DataFrame({"compressed.kl": [0.1, 0.3, 0.2, 0.5, 0.4], "compressed.flips": [0.01, 0.02, 0.05, 0.04, 0.06]})
    rho = stats.spearmanr(s["compressed.kl"], s["compressed.flips"]).statistic
    assert correlation_line(s) == f"Spearman ρ(flips, KL) = {rho:.3f} over n = 5 runs (5 distinct points)."


def test_close_values_print_apart_and_old_runs_get_intervals_and_config_labels(tmp_path):
    sweep = tmp_path / "sweep"
    fake_run(sweep / "r1", None, {"compressed.flips": 0.123412, "config.quant": "int8"}, seed=1, ci=False)
    fake_run(sweep / "r2", None, {"compressed.flips": 0.123448, "config.quant": "fp16"}, seed=2, ci=False)
    summary, _ = summarize(sorted(sweep.iterdir()), n_boot=60)
    assert summary["label"].tolist() == ["quant=fp16", "quant=int8"]
    md = to_markdown(summary, pd.DataFrame(columns=["label", "run", "error"]))
    assert "0.12341" in md and "0.12345" in md  # five decimals where four would print both as 0.1234
    want = intervals_from_predictions(pd.read_csv(sweep / "r1" / "predictions.csv"), n_boot=60)
    row = summary.set_index("label").loc["quant=int8"]
    assert row["compressed.accuracy_ci_low"] == want["compressed.accuracy_ci_low"]
    assert np.isnan(summarize(sorted(sweep.iterdir()), n_boot=0)[0]["compressed.accuracy_ci_low"]).all()


def test_a_large_sweep_gets_aggregate_plots_and_reads_no_predictions(tmp_path, monkeypatch):
    """Above MAX_PANELS runs the report draws no per-run panels and lists no per-run examples (each run folder has
    its own), so it never reads the predictions files: 2,000 folders take seconds (scripts/bench_sweep.py)."""
    from uqcompress.report import html, summary as S

    sweep = tmp_path / "sweep"
    n = S.MAX_PANELS + 2
    for i in range(n):
        fake_run(sweep / f"seed={i}", [f"seed={i}"], {"compressed.flips": 0.01 * (i % 7)}, seed=i, ci=True)
    real = pd.read_csv
    monkeypatch.setattr(pd, "read_csv", lambda p, *a, **k: pytest.fail(f"read {p}") if str(p).endswith(
        "predictions.csv") else real(p, *a, **k))
    paths = write_report([sweep], n_boot=0)
    names = {p.name for p in paths}
    assert {"flips_vs_kl.png", "accuracy_delta_vs_flips.png", "report.html"} <= names
    assert not names & {"risk_coverage.png", "reliability.png", "cascade.png"}
    page = (sweep / "report" / "report.html").read_text()
    assert f"{n} runs: the flipped examples of each are on its own report.html" in page
    assert n > html.MAX_EXAMPLE_RUNS
