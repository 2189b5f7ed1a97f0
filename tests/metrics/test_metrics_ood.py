"""OOD metrics (OOD positive, score = -confidence) against scikit-learn and torchmetrics."""
import math
import warnings
from unittest import mock

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from sklearn.metrics import average_precision_score, roc_auc_score, roc_curve

from uqcompress import metrics as M
from uqcompress.metrics import _kernels


def sklearn_ood(cid, cood) -> dict:
    y = np.r_[np.zeros(len(cid)), np.ones(len(cood))]
    s = -np.r_[cid, cood].astype(np.float64)
    fpr, tpr, _ = roc_curve(y, s, drop_intermediate=False)
    return {
        "auroc": roc_auc_score(y, s),
        "fpr95": float(fpr[np.argmax(tpr >= 0.95)]),  # first threshold (decreasing score) with TPR >= 0.95
        "aupr_in": average_precision_score(1 - y, -s),
        "aupr_out": average_precision_score(y, s),
    }


@pytest.mark.parametrize("seed", range(3))
@pytest.mark.parametrize("tied", [False, True])
def test_ood_matches_sklearn_on_random_scores(seed, tied):
    rng = np.random.default_rng(seed)
    cid, cood = rng.beta(5, 1, 4000), rng.beta(3, 1, 2500)
    if tied:  # fp16 rounding: many exact ties across and within the two splits
        cid, cood = cid.astype(np.float16), cood.astype(np.float16)
    r = M.ood(cid, cood)
    ref = sklearn_ood(cid, cood)
    assert r == pytest.approx(ref, abs=1e-12)
    assert M.auroc(torch.from_numpy(cid.astype(np.float32)), cood) == pytest.approx(ref["auroc"], abs=1e-12)


@st.composite
def id_ood(draw):
    seed = draw(st.integers(0, 2**32 - 1))
    rng = np.random.default_rng(seed)
    levels = draw(st.integers(1, 10))
    n_id, n_ood = draw(st.integers(1, 40)), draw(st.integers(1, 40))
    shift = draw(st.integers(-levels, levels))
    return rng.integers(0, levels, n_id) / levels, (rng.integers(0, levels, n_ood) + shift) / levels


@settings(max_examples=100, deadline=None)
@given(id_ood(), st.sampled_from([1, 2, 3, 7, 1 << 16]))
def test_ood_matches_sklearn_on_adversarial_ties(pair, block):
    cid, cood = pair
    with mock.patch.object(_kernels, "GROUP_BLOCK", block):  # tie groups straddling block edges
        assert M.ood(cid, cood) == pytest.approx(sklearn_ood(cid, cood), abs=1e-12)


def test_auroc_matches_torchmetrics(tmf):
    rng = np.random.default_rng(4)
    cid, cood = rng.beta(5, 1, 3000), rng.beta(3, 1, 3000)
    s = torch.from_numpy(-np.r_[cid, cood])
    y = torch.cat([torch.zeros(3000, dtype=torch.long), torch.ones(3000, dtype=torch.long)])
    assert M.auroc(cid, cood) == pytest.approx(float(tmf.binary_auroc(s, y)), abs=1e-6)
    assert M.ood(cid, cood)["aupr_out"] == pytest.approx(float(tmf.binary_average_precision(s, y)), abs=1e-6)


def test_ood_hand_computed():
    # ID confidence 0.9 0.8 0.7, OOD 0.2 0.8
    # AUROC: pairs where OOD is less confident: 0.2 beats 3, 0.8 beats 0.7 and ties 0.8 -> (3 + 1.5) / 6
    # FPR95: TPR >= 0.95 needs both OOD -> flag confidence <= 0.8 -> ID 0.8 and 0.7 flagged -> 2/3
    # AUPR-Out (ascending confidence): 0.2 (OOD) P=1 R=1/2; {0.8 ID, 0.8 OOD} after 0.7 ID: P=2/4 R=1 -> 0.75
    # AUPR-In (descending): 0.9 P=1 R=1/3; {0.8, 0.8}: P=2/3 R=2/3; 0.7: P=3/4 R=1 -> (1 + 2/3 + 3/4) / 3
    r = M.ood([0.9, 0.8, 0.7], [0.2, 0.8])
    assert r == pytest.approx({"auroc": 0.75, "fpr95": 2 / 3, "aupr_in": (1 + 2 / 3 + 3 / 4) / 3, "aupr_out": 0.75})


def test_ood_extremes():
    assert M.ood([0.9, 0.8], [0.1, 0.2]) == pytest.approx({"auroc": 1.0, "fpr95": 0.0, "aupr_in": 1.0,
                                                           "aupr_out": 1.0})
    r = M.ood([0.1, 0.2], [0.9, 0.8])
    assert r["auroc"] == 0.0 and r["fpr95"] == 1.0
    r = M.ood([0.5] * 3, [0.5] * 2)  # all tied: chance AUROC, precision = prevalence
    assert r == pytest.approx({"auroc": 0.5, "fpr95": 1.0, "aupr_in": 0.6, "aupr_out": 0.4})


def test_fpr95_threshold_is_first_reaching_95_percent_exactly():
    # 20 OOD samples: TPR reaches exactly 19/20 = 0.95 at the 19th lowest confidence (0.19)
    cood = np.arange(1, 21) / 100.0
    cid = np.array([0.185, 0.19, 0.195, 0.5])  # 0.185 and 0.19 (tied) are flagged at that threshold
    assert M.ood(cid, cood)["fpr95"] == 0.5
    assert M.ood(cid, cood)["fpr95"] == sklearn_ood(cid, cood)["fpr95"]


@pytest.mark.parametrize("empty", ["id", "ood"])
def test_one_class_only_is_nan_with_one_warning(empty):
    cid, cood = ([], [0.1, 0.2]) if empty == "id" else ([0.1, 0.2], [])
    with warnings.catch_warnings(record=True) as rec:
        warnings.simplefilter("always")
        r = M.ood(cid, cood)
        a = M.auroc(cid, cood)
    assert all(math.isnan(v) for v in r.values()) and math.isnan(a)
    assert len(rec) == 2 and all(issubclass(w.category, M.UndefinedMetricWarning) for w in rec)
