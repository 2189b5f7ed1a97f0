"""Selectors: fixed threshold, target selective risk (vs brute force), the MC-interval rule (vs a hand loop)."""
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from uqcompress.selection import SELECTORS, build_selector
from uqcompress.uncertainty.base import Outputs


def test_registered():
    assert {"threshold", "coverage", "risk", "mc_interval"} <= set(SELECTORS.names())


def test_threshold_is_fixed_and_ignores_calibration():
    sel = build_selector({"name": "threshold", "value": 0.7})
    sel.fit(torch.tensor([0.1, 0.2]), torch.tensor([True, False]))
    assert sel.threshold == 0.7
    assert sel.accept(torch.tensor([0.69, 0.7, 0.71])).tolist() == [False, True, True]


def brute_force_risk_threshold(conf, correct, target):
    best = (-1.0, float("inf"))
    for t in sorted(set(conf.tolist())):
        acc = conf >= t
        risk = 1 - correct[acc].float().mean().item()
        cov = acc.float().mean().item()
        if risk <= target + 1e-12 and cov > best[0]:
            best = (cov, t)
    return best[1]


@settings(max_examples=60, deadline=None)
@given(st.lists(st.tuples(st.integers(0, 6), st.booleans()), min_size=1, max_size=40),
       st.sampled_from([0.0, 0.1, 0.25, 0.5]))
def test_risk_threshold_is_the_largest_coverage_meeting_the_target(rows, target):
    conf = torch.tensor([r[0] / 6 for r in rows], dtype=torch.float64)   # many ties on purpose
    correct = torch.tensor([r[1] for r in rows])
    sel = build_selector({"name": "risk", "target": target})
    sel.fit(conf, correct)  # an unreachable target abstains with a log line (test below)
    assert sel.threshold == brute_force_risk_threshold(conf, correct, target)
    acc = sel.accept(conf)
    if acc.any():
        assert 1 - correct[acc].float().mean() <= target + 1e-12


def test_risk_unreachable_target_abstains_on_everything_with_a_log_line(caplog):
    sel = build_selector({"name": "risk", "target": 0.0})
    with caplog.at_level("WARNING", logger="uqcompress.selection.risk"):
        sel.fit(torch.tensor([0.9, 0.8]), torch.tensor([False, True]))
    assert "on the 2 calibration samples; abstaining on everything" in caplog.text
    assert not sel.accept(torch.tensor([1.0, 0.9])).any()


def test_mc_interval_matches_a_hand_loop():
    g = torch.Generator().manual_seed(0)
    mc = torch.softmax(torch.randn(12, 50, 4, generator=g) * torch.rand(1, 50, 1, generator=g) * 4, -1)
    for z in (0.0, 0.5, 1.0, 2.0):
        got = build_selector({"name": "mc_interval", "conf_factor": z}).accept(torch.zeros(50),
                                                                               Outputs(torch.zeros(50, 4), mc_probs=mc))
        p = mc.double().numpy()
        want = []
        for i in range(50):
            mean, std = p[:, i].mean(0), p[:, i].std(0)
            top = mean.argmax()
            lo = mean[top] - z * std[top]
            want.append(all(lo > mean[j] + z * std[j] for j in range(4) if j != top))
        assert got.tolist() == want
    # wider intervals abstain more
    covs = [build_selector({"name": "mc_interval", "conf_factor": z}).accept(
        torch.zeros(50), Outputs(torch.zeros(50, 4), mc_probs=mc)).float().mean() for z in (0.0, 1.0, 3.0)]
    assert covs[0] >= covs[1] >= covs[2] and covs[0] > covs[2]


def test_mc_interval_needs_passes_and_says_so():
    sel = build_selector({"name": "mc_interval"})
    assert sel.needs == {"mc"}
    with pytest.raises(ValueError, match="needs Outputs.mc_probs"):
        sel.accept(torch.zeros(2), Outputs(torch.zeros(2, 2)))


def test_bad_options():
    with pytest.raises(ValueError, match="selector 'mc_interval' has no option 'target'; its options: conf_factor"):
        build_selector({"name": "mc_interval", "target": 0.9})
    with pytest.raises(ValueError, match="selector.target=1.5"):
        build_selector({"name": "risk", "target": 1.5})
    with pytest.raises(ValueError, match="conf_factor=-1"):
        build_selector({"name": "mc_interval", "conf_factor": -1})
