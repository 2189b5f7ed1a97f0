"""Budget parsing (one-line errors), its terms, the risk selector it asks for, and the measures it is checked on
(against scikit-learn and a direct computation)."""
from __future__ import annotations

import math
from types import SimpleNamespace

import numpy as np
import pytest
import torch
from sklearn.metrics import accuracy_score

from uqcompress.tune.budget import KEYS, Budget, measure_split


@pytest.mark.parametrize("cfg, message", [
    ({"flip": 0.03}, "unknown budget key(s) ['flip']; budget keys: flips, kl"),
    ({}, "the budget is empty"),
    ({"flips": None, "kl": None}, "the budget is empty"),
    ({"flips": 1.5}, "budget.flips=1.5 must be in [0, 1]"),
    ({"flips": "a lot"}, "budget.flips='a lot' must be a number"),
    ({"flips": True}, "budget.flips=True must be a number"),
    ({"kl": -0.1}, "budget.kl=-0.1 must be in [0, inf)"),
    ({"risk": 0.05}, "budget.risk and budget.coverage go together"),
    ({"coverage": 0.8}, "budget.risk and budget.coverage go together"),
    ({"risk": 0.05, "coverage": 0.0}, "budget.coverage=0.0 must be in (0, 1]"),
    ({"flips": 0.03, "delta": 0.1}, "budget.delta is the failure probability"),
])
def test_bad_budgets_fail_in_one_line(cfg, message):
    with pytest.raises(ValueError) as e:
        Budget.from_config(cfg)
    assert str(e.value).startswith(message) and "\n" not in str(e.value)


def test_terms_and_limits():
    b = Budget.from_config({"flips": 0.03, "accuracy_drop": 0.01, "risk": 0.05, "coverage": 0.8})
    assert b.limits() == {"flips": 0.03, "accuracy_drop": 0.01, "coverage": 0.8}  # risk sets the selector
    ok = {"flips": 0.03, "kl": 9.0, "accuracy_drop": -0.01, "coverage": 0.8}
    assert b.holds(ok)  # limits are inclusive; kl is not in this budget
    assert b.misses({**ok, "coverage": 0.7, "flips": 0.031}) == {"flips": (0.031, 0.03), "coverage": (0.7, 0.8)}
    assert b.describe({**ok, "coverage": 0.7}) == "coverage 0.7 < 0.8"
    missing = b.misses({"flips": 0.0, "accuracy_drop": 0.0})  # coverage undefined (e.g. nothing accepted)
    assert list(missing) == ["coverage"] and math.isnan(missing["coverage"][0])
    assert set(KEYS) == set(b.as_dict())


def test_risk_selector_prefers_risk_guarantee_when_registered():
    b = Budget(risk=0.05, coverage=0.8, delta=0.1)
    assert b.selector(["coverage", "risk", "risk_guarantee"]) == {"name": "risk_guarantee", "target": 0.05,
                                                                  "delta": 0.1}
    assert Budget(risk=0.05, coverage=0.8).selector(["risk"]) == {"name": "risk", "target": 0.05}
    with pytest.raises(ValueError, match="budget.delta needs the risk_guarantee selector"):
        b.selector(["coverage", "risk"])
    assert Budget(flips=0.03).selector(["risk"]) is None


def _eval(logits, labels, temperature=1.0):
    z = torch.as_tensor(logits, dtype=torch.float32)
    return SimpleNamespace(outputs={"s": SimpleNamespace(logits=z, labels=torch.as_tensor(labels))},
                           probs={"s": (z / temperature).softmax(-1)})


def test_measure_split_against_direct_computation():
    rng = np.random.default_rng(0)
    zb = rng.normal(size=(300, 4)) * 3
    zc = zb + rng.normal(size=(300, 4))
    y = rng.integers(0, 4, 300)
    m = measure_split(_eval(zb, y), _eval(zc, y), "s", coverage=0.9)
    pb, pc = zb.argmax(1), zc.argmax(1)
    assert m["flips"] == pytest.approx(np.mean((pb == y) != (pc == y)))
    assert m["accuracy"] == pytest.approx(accuracy_score(y, pc))
    assert m["accuracy_drop"] == pytest.approx(accuracy_score(y, pb) - accuracy_score(y, pc))
    lb = zb - np.log(np.exp(zb).sum(1, keepdims=True))
    lc = zc - np.log(np.exp(zc).sum(1, keepdims=True))
    assert m["kl"] == pytest.approx(np.mean((np.exp(lb) * (lb - lc)).sum(1)), rel=1e-5)
    assert m["coverage"] == 0.9
    assert math.isnan(measure_split(_eval(zb, y), _eval(zc, y), "s")["coverage"])
