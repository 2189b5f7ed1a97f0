"""The verdict line: its decision rule on hand-built results, and a real small run whose terminal table and run page
open with it."""
import json
import re

import pandas as pd
import pytest

from uqcompress.report.verdict import MAX_ACCURACY_DROP, MAX_FLIPS, verdict

GOOD = {"baseline.accuracy": 0.90, "compressed.accuracy": 0.897, "compressed.flips": 0.012,
        "compressed.agreement": 0.98, "compressed.threshold": 0.61, "compressed.coverage": 0.9,
        "compressed.selective_risk": 0.03, "compressed.speedup": 2.5, "baseline.model_size_bytes": 1000,
        "compressed.model_size_bytes": 250, "config.selector": "coverage", "config.selector.target": 0.9}


def test_within_tolerances_can_replace_and_shows_every_term_and_ratio():
    line = verdict(GOOD)
    assert line.startswith("CAN REPLACE the baseline at threshold 0.61:")
    for part in ("flips 1.2%", "agreement 98.0%", "accuracy −0.3 pt", "coverage 90.0%", "selective risk 3.0%",
                 "×2.5 faster", "×4.0 smaller"):
        assert part in line, part
    assert "guarantee" not in line and "cascade" not in line  # only when asked for


def test_each_failing_term_is_named():
    assert MAX_FLIPS == 0.02 and MAX_ACCURACY_DROP == 0.01
    many = verdict({**GOOD, "compressed.flips": 0.05})
    assert many.startswith("CANNOT REPLACE") and "(flips 5.0% > 2%)" in many
    drop = verdict({**GOOD, "compressed.accuracy": 0.87})
    assert drop.startswith("CANNOT REPLACE") and "accuracy drop 3.0 pt > 1 pt" in drop
    both = verdict({**GOOD, "compressed.accuracy": 0.87, "compressed.flips": 0.05})
    assert "flips 5.0% > 2%; accuracy drop 3.0 pt > 1 pt" in both
    # tolerances are parameters
    assert verdict({**GOOD, "compressed.flips": 0.05}, max_flips=0.06).startswith("CAN REPLACE")
    slower = verdict({**GOOD, "compressed.speedup": 0.5, "compressed.model_size_bytes": 2000})
    assert "×2.0 slower" in slower and "×2.0 larger" in slower


def test_risk_target_and_guarantee_are_judged():
    risk = {**GOOD, "config.selector": "risk", "config.selector.target": 0.02}
    assert "selective risk 3.0% > target 2.0%" in verdict(risk) and verdict(risk).startswith("CANNOT")
    assert verdict({**risk, "compressed.selective_risk": 0.015}).startswith("CAN REPLACE")
    guar = {**risk, "config.selector": "risk_guarantee", "config.selector.delta": 0.1,
            "compressed.selective_risk": 0.01, "compressed.guarantee_valid": True, "compressed.guarantee_bound": 0.019}
    assert verdict(guar).startswith("CAN REPLACE")
    assert "guarantee holds (bound 1.9% with prob. ≥ 0.9)" in verdict(guar)
    off = verdict({**guar, "compressed.guarantee_valid": False})
    assert off.startswith("CANNOT REPLACE") and "guarantee does not hold" in off
    agree = {**GOOD, "config.selector": "agreement_guarantee", "config.selector.target": 0.02,
             "compressed.selective_disagreement": 0.03, "compressed.guarantee_valid": True}
    assert "selective disagreement 3.0% > target 2.0%" in verdict(agree)


def test_unknown_terms_give_no_verdict_and_cascade_appears_when_asked():
    nan = verdict({**GOOD, "compressed.flips": float("nan")})
    assert nan.startswith("NO VERDICT") and "flips" in nan
    casc = verdict({**GOOD, "config.deploy.fallback": "baseline", "cascade.accuracy": 0.899,
                    "cascade.flips": 0.004, "cascade.deferral_rate": 0.1, "cascade.cost": 0.5})
    assert "cascade (abstentions go to the baseline): accuracy 0.899, flips 0.4%, defers 10.0%, cost ×0.50" in casc


@pytest.mark.slow
def test_a_real_run_opens_its_table_and_page_with_the_verdict(cli, tmp_path):
    """selector=risk_guarantee + deploy.fallback=baseline: guarantee and cascade terms, checked against the run's own
    predictions.csv (flips recomputed by hand)."""
    out = tmp_path / "run"
    r = cli("limit=300", "fit_limit=300", "ood.limit=100", "model.epochs=2", "model.batch_size=32", "progress=false",
            "latency.repeats=2", "bootstrap=0", "plots=false", "selector=risk_guarantee", "selector.target=0.3",
            "deploy.fallback=baseline", f"hydra.run.dir={out}")
    assert r.returncode == 0, r.stderr[-2000:]
    res = json.loads((out / "results.json").read_text())
    line = verdict(res)
    head = line.split(":")[0][:40]  # rich may wrap the line; its start is printed before the table
    assert head in r.stdout and r.stdout.index(head) < r.stdout.index("┏")
    pred = pd.read_csv(out / "predictions.csv")
    test = pred[pred.split == "test"]
    flips = ((test.baseline_pred == test.label) != (test.compressed_pred == test.label)).mean()
    assert f"flips {100 * flips:.1f}%" in line
    assert "guarantee" in line and "cascade (abstentions go to the baseline)" in line
    assert (("CAN REPLACE" in line) == (flips <= MAX_FLIPS and res["baseline.accuracy"] - res["compressed.accuracy"]
                                        <= MAX_ACCURACY_DROP and res["compressed.guarantee_valid"] is True
                                        and res["compressed.selective_risk"] <= 0.3))
    page = (out / "report.html").read_text()
    first = re.search(r"</h1>\s*<p[^>]*>(.*?)</p>", page, re.S).group(1)
    assert first.replace("&gt;", ">").replace("&lt;", "<") == line
