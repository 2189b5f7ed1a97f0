"""scripts/validate_guarantees.py: its vectorised resplits equal fitting the registered selectors one calibration half
at a time, and the script prints its tables and PASS on a synthetic pool."""
import importlib.util
import math
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from uqcompress.selection import build_selector
from uqcompress.uncertainty.base import Outputs

SCRIPT = Path(__file__).resolve().parents[2] / "scripts" / "validate_guarantees.py"


@pytest.fixture(scope="module")
def vg():
    spec = importlib.util.spec_from_file_location("validate_guarantees", SCRIPT)
    mod = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = mod          # dataclasses look their module up while the script is executed
    spec.loader.exec_module(mod)
    yield mod
    sys.modules.pop(spec.name, None)


def synthetic_pool(rng, n=1200, k=5):
    conf = np.round(rng.random(n), 2)                                   # ties on purpose
    base = rng.integers(0, k, n)
    comp = np.where(rng.random(n) < 0.3 * (1 - conf), (base + 1) % k, base)
    labels = np.where(rng.random(n) < 0.9 - 0.3 * (1 - conf), comp, (comp + 2) % k)
    return conf, base, comp, labels


def test_resplits_equal_the_selectors_fit_per_draw(vg):
    rng = np.random.default_rng(0)
    conf, base, comp, labels = synthetic_pool(rng)
    masks = vg.resplit_masks(len(conf), 30, seed=1)
    assert (masks.sum(1) == len(conf) // 2).all()
    rs = vg.Resplits(conf, masks)
    for loss, selector, truth in ((comp != labels, "risk_guarantee", labels), (comp != base, "agreement_guarantee", base)):
        pooled, cal = rs.losses(loss)
        for target in (0.02, 0.05, 0.1):
            groups = {"risk": rs.fit_empirical(cal, target), selector: rs.fit_sgr(cal, target, 0.1)}
            for name, g in groups.items():
                thr = rs.threshold(g)
                violated, coverage, rate = rs.test_outcome(g, pooled, cal, target)
                for r in range(len(masks)):
                    c, t = masks[r], ~masks[r]
                    opts = {"target": target, **({"delta": 0.1} if name != "risk" else {})}
                    sel = build_selector({"name": name, **opts})
                    out = Outputs(torch.zeros(int(c.sum()), 1), reference=torch.from_numpy(base[c]))
                    sel.fit(torch.from_numpy(conf[c]), torch.from_numpy(comp[c] == truth[c]), out)
                    assert thr[r] == sel.threshold, (name, target, r)
                    acc = conf[t] >= sel.threshold
                    assert coverage[r] == acc.mean()
                    if acc.any():
                        assert rate[r] == pytest.approx(loss[t][acc].mean(), abs=1e-15)
                        assert violated[r] == (loss[t][acc].mean() > target)
                    else:
                        assert not violated[r] and math.isnan(rate[r])


def test_study_rows_and_the_printed_tables(vg, monkeypatch, capsys):
    rng = np.random.default_rng(2)
    conf, base, comp, labels = synthetic_pool(rng, n=2000)
    logit = lambda pred, c: torch.from_numpy(np.eye(5)[pred] * (2 + 6 * c[:, None]))   # noqa: E731
    pool = {"comp_logits": logit(comp, conf), "base_logits": logit(base, np.full(len(conf), 0.5)),
            "labels": torch.from_numpy(labels), "is_test": torch.arange(len(conf)) >= 800,
            "comp_latency_ms": 0.25, "base_latency_ms": 1.0}
    monkeypatch.setattr(vg, "STUDIES", {"synthetic": vg.Study("synthetic", (), (0.05, 0.1), (0.05,))})
    monkeypatch.setattr(vg, "pooled_predictions", lambda study: pool)
    code = vg.main(["--models", "synthetic", "--resplits", "200"])
    out = capsys.readouterr().out
    assert "| synthetic (pool 2000" in out and "risk_guarantee" in out and "agreement_guarantee" in out
    assert "risk on disagreement" in out
    assert out.count("| synthetic | ") == 4                                  # one cascade row per scorer
    assert out.strip().splitlines()[-1].startswith("PASS" if code == 0 else "FAIL")
    conf_msp = torch.softmax(pool["comp_logits"].double(), -1).max(-1).values.numpy()
    rows = vg.study_rows(conf_msp, comp != labels, comp != base, (0.05, 0.1), (0.05,), resplits=200)
    assert [r["selector"] for r in rows] == ["risk", "risk_guarantee"] * 2 + ["risk on disagreement",
                                                                             "agreement_guarantee"]
    for r in rows:
        assert 0 <= r["violation"] <= 1 and 0 <= r["coverage"] <= 1
        if r["guaranteed"]:
            assert r["bound"] == pytest.approx(0.1 + 2 * math.sqrt(0.09 / 200))
            assert r["pass"] == (r["violation"] <= r["bound"])
    assert code == (0 if all(r["pass"] for r in rows if r["guaranteed"]) else 1)
    with pytest.raises(SystemExit):
        vg.main(["--models", "nope"])


def plain_fixed_sequence(conf, loss, target, delta):
    """Learn-then-Test fixed-sequence testing over the distinct confidences, most confident first, in plain Python."""
    from scipy.stats import binom

    best = math.inf
    for t in sorted(set(conf.tolist()), reverse=True):
        answered = loss[conf >= t]
        if (1 - target) ** len(answered) > delta:        # no labels could reject here yet: not a test
            continue
        if binom.cdf(answered.sum(), len(answered), target) > delta:
            break
        best = t
    return best


def test_fixed_sequence_comparison_equals_a_plain_loop(vg):
    rng = np.random.default_rng(4)
    conf, base, comp, labels = synthetic_pool(rng, n=900)
    masks = vg.resplit_masks(len(conf), 40, seed=0)
    rs = vg.Resplits(conf, masks)
    loss = comp != labels
    pooled, cal = rs.losses(loss)
    seen = []
    for target in (0.02, 0.05, 0.1):
        thr = rs.threshold(rs.fit_fixed_sequence(cal, target, 0.1))
        want = [plain_fixed_sequence(conf[m], loss[m], target, 0.1) for m in masks]
        assert thr.tolist() == want
        seen += want
    assert any(math.isfinite(t) for t in seen) and any(math.isinf(t) for t in seen)   # both outcomes exercised
