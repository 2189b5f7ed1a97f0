"""risk_guarantee / agreement_guarantee: the certificate against a direct binomial computation, tie handling, the
no-certificate path, persistence, and a resplit simulation in which the guarantee holds while `risk` misses half
the time."""
import logging
import math

import numpy as np
import pytest
import torch
from scipy.stats import binom

from uqcompress.predictor import _selector_from_state
from uqcompress.selection import SELECTORS, build_selector
from uqcompress.uncertainty.base import Outputs


def test_registered_with_their_contract():
    assert {"risk_guarantee", "agreement_guarantee"} <= set(SELECTORS.names())
    assert build_selector({"name": "risk_guarantee"}).needs == frozenset()
    assert build_selector({"name": "risk_guarantee"}).truth == "labels"
    sel = build_selector({"name": "agreement_guarantee"})
    assert sel.needs == {"reference"} and sel.truth == "reference"
    assert build_selector({"name": "coverage"}).facts() == {}          # base default: nothing to report


def test_certificate_against_a_direct_binomial_computation():
    # 600 distinct confidences, errors concentrated among the least confident
    rng = np.random.default_rng(0)
    conf = torch.from_numpy(rng.permutation(600) / 600.0)
    correct = ~((conf < 0.25) & torch.from_numpy(rng.random(600) < 0.5)) & ~(torch.arange(600) == 7)
    sel = build_selector({"name": "risk_guarantee", "target": 0.05, "delta": 0.1}).fit(conf, correct)
    f = sel.facts()
    accepted = conf >= sel.threshold
    n, e = int(accepted.sum()), int((~correct[accepted]).sum())
    k = math.ceil(math.log2(600 + 1))
    assert f["guarantee_tests"] == k
    assert f["guarantee_valid"] is True
    assert f["guarantee_calibration_coverage"] == n / 600 and f["guarantee_calibration_loss"] == e / n
    # the bound b solves P(Binomial(n, b) <= e) = delta / k, and it is within the target
    assert binom.cdf(e, n, f["guarantee_bound"]) == pytest.approx(0.1 / k, rel=1e-8)
    assert f["guarantee_bound"] <= 0.05
    assert f["guarantee_target"] == 0.05 and f["guarantee_delta"] == 0.1 and f["guarantee_loss"] == "selective risk"


def test_ties_are_accepted_or_rejected_together():
    conf = torch.tensor([0.9] * 300 + [0.5] * 300 + [0.1] * 300, dtype=torch.float64)
    correct = torch.ones(900, dtype=torch.bool)
    correct[560:600] = False         # the last 40 of the 0.5 group (in input order) are wrong
    sel = build_selector({"name": "risk_guarantee", "target": 0.02, "delta": 0.1}).fit(conf, correct)
    # splitting the tie in input order would accept 0.9 + the first 260 of 0.5 with no error; a threshold cannot
    # do that, and the whole 0.5 group (40 / 600 wrong) breaks the target: only the 0.9 group is certified
    assert sel.threshold == 0.9
    assert int(sel.accept(conf).sum()) == 300 and sel.facts()["guarantee_calibration_coverage"] == 300 / 900
    assert sel.facts()["guarantee_tests"] == 2                       # 3 distinct values: ceil(log2(3 + 1))
    assert sel.facts()["guarantee_bound"] == pytest.approx(1 - (0.1 / 2) ** (1 / 300), rel=1e-10)


def test_no_certified_threshold_abstains_on_everything_with_one_log_line(caplog):
    conf = torch.linspace(0, 1, 150, dtype=torch.float64)
    correct = torch.ones(150, dtype=torch.bool)      # perfect, but 150 samples cannot certify 1% at delta 0.1
    with caplog.at_level(logging.WARNING, logger="uqcompress.selection"):
        sel = build_selector({"name": "risk_guarantee", "target": 0.01, "delta": 0.1}).fit(conf, correct)
    lines = [r.getMessage() for r in caplog.records]
    assert len(lines) == 1
    assert "0.01" in lines[0] and "delta=0.1" in lines[0] and "150 calibration samples" in lines[0]
    assert "abstaining on everything" in lines[0]
    assert sel.threshold == math.inf and not sel.accept(torch.tensor([1.0, 1e9], dtype=torch.float64)).any()
    f = sel.facts()
    assert f["guarantee_valid"] is False and math.isnan(f["guarantee_bound"])
    assert f["guarantee_calibration_coverage"] == 0.0


def test_agreement_guarantee_controls_disagreement_and_needs_the_reference():
    rng = np.random.default_rng(1)
    conf = torch.from_numpy(rng.random(2000))
    ref = torch.from_numpy(rng.integers(0, 5, 2000))
    pred = torch.where((conf < 0.3) & torch.from_numpy(rng.random(2000) < 0.3), (ref + 1) % 5, ref)
    sel = build_selector({"name": "agreement_guarantee", "target": 0.02, "delta": 0.1})
    with pytest.raises(ValueError, match="needs the reference"):
        sel.fit(conf, pred == ref, Outputs(torch.zeros(2000, 5)))
    with pytest.raises(ValueError, match="needs the reference"):
        sel.fit(conf, pred == ref)
    sel.fit(conf, pred == ref, Outputs(torch.zeros(2000, 5), reference=ref))
    acc = sel.accept(conf)
    f = sel.facts()
    assert f["guarantee_valid"] and f["guarantee_loss"] == "disagreement with the reference model"
    assert f["guarantee_calibration_loss"] == float((pred[acc] != ref[acc]).double().mean())
    # the same numbers as risk_guarantee on "correct = agrees with the reference"
    twin = build_selector({"name": "risk_guarantee", "target": 0.02, "delta": 0.1}).fit(conf, pred == ref)
    assert twin.threshold == sel.threshold and twin.facts()["guarantee_bound"] == f["guarantee_bound"]


@pytest.mark.parametrize("bad,match", [({"target": 1.0}, "selector.target=1.0"), ({"delta": 0.0}, "selector.delta=0.0"),
                                       ({"delta": 1}, "selector.delta=1"), ({"target": -0.1}, "selector.target=-0.1")])
def test_bad_options_are_one_line(bad, match):
    with pytest.raises(ValueError, match=match):
        build_selector({"name": "risk_guarantee", **bad})
    with pytest.raises(ValueError, match="has no option 'value'"):
        build_selector({"name": "agreement_guarantee", "value": 0.3})


def test_state_round_trips_through_the_predictor_loader():
    conf = torch.linspace(0, 1, 3000, dtype=torch.float64)
    sel = build_selector({"name": "risk_guarantee", "target": 0.05, "delta": 0.2}).fit(conf, conf > 0.1)
    back = _selector_from_state(sel.state())
    assert type(back) is type(sel) and back.threshold == sel.threshold and back.delta == 0.2
    assert torch.equal(back.accept(conf), sel.accept(conf))


def test_resplit_simulation_guarantee_holds_where_risk_misses_half_the_time():
    """Synthetic pool of 2,000 with P(error | confidence) decreasing; 300 resplits into halves, selectors fit on the
    calibration half, violation = test error rate among accepted > target."""
    rng = np.random.default_rng(0)
    n, resplits, target, delta = 2000, 300, 0.05, 0.1
    conf = rng.random(n)
    eta = (1 - conf) ** 2
    wrong = rng.random(n) < eta * (0.15 / eta.mean())
    violations = {"risk": 0, "risk_guarantee": 0}
    coverage = {"risk": 0.0, "risk_guarantee": 0.0}
    for _ in range(resplits):
        cal = np.zeros(n, bool)
        cal[rng.permutation(n)[: n // 2]] = True
        for name in violations:
            sel = build_selector({"name": name, "target": target, **({"delta": delta} if "guarantee" in name else {})})
            sel.fit(torch.from_numpy(conf[cal]), torch.from_numpy(~wrong[cal]))
            acc = sel.accept(torch.from_numpy(conf[~cal])).numpy()
            coverage[name] += acc.mean() / resplits
            if acc.any() and wrong[~cal][acc].mean() > target:
                violations[name] += 1
    rate = {k: v / resplits for k, v in violations.items()}
    se = math.sqrt(delta * (1 - delta) / resplits)
    assert rate["risk_guarantee"] <= delta + 2 * se
    assert 0.35 <= rate["risk"] <= 0.65                              # the empirical rule misses about half the time
    assert 0.2 < coverage["risk_guarantee"] < coverage["risk"]       # the guarantee costs coverage, not everything
