"""Scorers: the sign convention for every registered scorer, the formulas against hand / sklearn computations."""
import math

import numpy as np
import pytest
import torch

from uqcompress.uncertainty import SCORERS, build_scorer
from uqcompress.uncertainty import functional as F
from uqcompress.uncertainty.base import Outputs

K, D = 4, 8
EXTRA = {"mc_dropout": {"samples": 3}, "knn": {"k": 3}}


def _fit_split(seed=0):
    g = torch.Generator().manual_seed(seed)
    means = 5 * torch.eye(K, D)
    y = torch.arange(200) % K
    feats = means[y] + 0.3 * torch.randn(200, D, generator=g)
    return Outputs(torch.zeros(200, K), y, features=feats)


def _confident_vs_flat():
    """Row 0: confident in every sense (peaked logits, features at a class mean, MC passes that agree).
    Row 1: flat logits, features far from the data, MC passes that disagree."""
    logits = torch.tensor([[8.0, 0.0, 0.0, 0.0], [0.0, 0.0, 0.0, 0.0]])
    feats = torch.stack([5 * torch.eye(K, D)[0], -20 * torch.ones(D)])
    sure = torch.tensor([0.97, 0.01, 0.01, 0.01])
    passes = torch.stack([torch.stack([sure, torch.eye(K)[t % K] * 0.7 + 0.075]) for t in range(4)])  # (T, 2, K)
    return Outputs(logits, torch.tensor([0, 0]), mc_probs=passes, features=feats)


@pytest.mark.parametrize("name", SCORERS.names())
def test_every_scorer_scores_a_confident_row_above_a_flat_row(name):
    scorer = build_scorer({"name": name, **EXTRA.get(name, {})})
    cal = _confident_vs_flat()
    scorer.fit(Outputs(torch.randn(50, K), torch.arange(50) % K), _fit_split())
    conf = scorer.score(cal)
    assert conf.dtype == torch.float64 and conf.shape == (2,)
    assert conf[0] > conf[1], f"{name}: higher must mean more confident, got {conf.tolist()}"
    probs = scorer.probs(cal)
    assert torch.allclose(probs.sum(-1), torch.ones(2, dtype=torch.float64))


def test_single_pass_scorers_take_bare_logits_without_a_model():
    z = torch.randn(6, 5)
    for name in ("msp", "entropy", "margin", "energy", "temperature"):
        s = build_scorer({"name": name, "temperature": 1.0} if name == "temperature" else {"name": name})
        assert torch.equal(s.score(z), s.score(Outputs(z)))


def test_formulas_match_hand_computation():
    g = torch.Generator().manual_seed(1)
    z = torch.randn(20, 6, generator=g) * 3
    p = np.exp(z.double().numpy()) / np.exp(z.double().numpy()).sum(1, keepdims=True)
    np.testing.assert_allclose(F.msp(z).numpy(), p.max(1), rtol=1e-12)
    np.testing.assert_allclose(F.neg_entropy(z).numpy(), (p * np.log(p)).sum(1), rtol=1e-10)
    srt = np.sort(p, 1)
    np.testing.assert_allclose(F.margin(z).numpy(), srt[:, -1] - srt[:, -2], rtol=1e-10)
    zz = z.double().numpy() / 2.0
    lse = zz.max(1) + np.log(np.exp(zz - zz.max(1, keepdims=True)).sum(1))
    np.testing.assert_allclose(F.neg_energy(z, 2.0).numpy(), 2.0 * lse, rtol=1e-12)
    # temperature composes: msp at tau == max of softmax(z / tau)
    s = build_scorer({"name": "msp", "temperature": 2.5})
    pt = torch.softmax(z.double() / 2.5, -1).max(-1).values
    assert torch.allclose(s.score(z), pt)
    e = build_scorer({"name": "energy", "temperature": 2.0})   # energy of the temperature-scaled logits
    assert torch.allclose(e.score(z), F.neg_energy(z / 2.0))


def test_mutual_information_is_bald():
    g = torch.Generator().manual_seed(2)
    mc = torch.softmax(torch.randn(7, 5, 3, generator=g), -1)
    p = mc.double().numpy()
    mean = p.mean(0)
    mi = -(mean * np.log(mean)).sum(-1) - (-(p * np.log(p)).sum(-1)).mean(0)
    np.testing.assert_allclose(F.mutual_information(mc).numpy(), mi, rtol=1e-9, atol=1e-12)
    s = build_scorer({"name": "mc_dropout", "score": "mi"})
    np.testing.assert_allclose(s.score(Outputs(torch.zeros(5, 3), mc_probs=mc)).numpy(), -mi, rtol=1e-9, atol=1e-12)
    for score, want in (("msp", mean.max(-1)), ("entropy", (mean * np.log(mean)).sum(-1))):
        got = build_scorer({"name": "mc_dropout", "score": score}).score(Outputs(torch.zeros(5, 3), mc_probs=mc))
        np.testing.assert_allclose(got.numpy(), want, rtol=1e-9)
    # identical passes carry no epistemic uncertainty
    same = mc[:1].expand(4, -1, -1)
    assert F.mutual_information(same).abs().max() < 1e-12


def test_mc_temperature_rescales_every_pass():
    g = torch.Generator().manual_seed(3)
    logits = torch.randn(4, 6, 3, generator=g)
    s = build_scorer({"name": "mc_dropout", "score": "msp", "temperature": 2.0})
    got = s.probs(Outputs(torch.zeros(6, 3), mc_probs=logits.softmax(-1)))
    assert torch.allclose(got, torch.softmax(logits.double() / 2.0, -1).mean(0), atol=1e-12)


def test_mahalanobis_matches_sklearn_pooled_covariance():
    from sklearn.covariance import EmpiricalCovariance

    fit = _fit_split(5)
    x = torch.randn(30, D, generator=torch.Generator().manual_seed(6)) * 3
    s = build_scorer({"name": "mahalanobis", "shrinkage": 0.0}).fit(Outputs(torch.zeros(1, K)), fit)
    f, y = fit.features.double().numpy(), fit.labels.numpy()
    means = np.stack([f[y == c].mean(0) for c in range(K)])
    cov = EmpiricalCovariance(assume_centered=True).fit(f - means[y])
    d = np.stack([cov.mahalanobis(x.double().numpy() - means[c]) for c in range(K)], 1)
    np.testing.assert_allclose(s.score(Outputs(torch.zeros(30, K), features=x)).numpy(), -d.min(1), rtol=1e-6)


def test_knn_is_kth_cosine_similarity():
    fit = _fit_split(7)
    x = torch.randn(9, D, generator=torch.Generator().manual_seed(8))
    s = build_scorer({"name": "knn", "k": 4}).fit(Outputs(torch.zeros(1, K)), fit)
    a = x.double().numpy() / np.linalg.norm(x.double().numpy(), axis=1, keepdims=True)
    b = fit.features.double().numpy()
    b = b / np.linalg.norm(b, axis=1, keepdims=True)
    want = -np.sort(-(a @ b.T), 1)[:, 3]
    np.testing.assert_allclose(s.score(Outputs(torch.zeros(9, K), features=x)).numpy(), want, rtol=1e-5)
    with pytest.raises(ValueError, match="k=500 exceeds the 200"):
        build_scorer({"name": "knn", "k": 500}).fit(Outputs(torch.zeros(1, K)), fit)


def test_bad_options_are_one_line_errors():
    with pytest.raises(ValueError, match="score='bald' is not one of: msp, entropy, mi"):
        build_scorer({"name": "mc_dropout", "score": "bald"})
    with pytest.raises(ValueError, match="mode='both' is not one of: full, head"):
        build_scorer({"name": "mc_dropout", "mode": "both"})
    with pytest.raises(ValueError, match="uncertainty 'entropy' has no option 'k'; its options: temperature"):
        build_scorer({"name": "entropy", "k": 3})
    with pytest.raises(ValueError, match="needs Outputs.features"):
        build_scorer({"name": "knn"}).fit(Outputs(torch.zeros(2, 2)), Outputs(torch.zeros(2, 2), torch.zeros(2)))
    with pytest.raises(ValueError, match="needs Outputs.mc_probs"):
        build_scorer({"name": "mc_dropout"}).score(torch.zeros(2, 2))


def test_state_roundtrip_reproduces_scores():
    from uqcompress.predictor import _scorer_from_state

    fit = _fit_split(9)
    out = _confident_vs_flat()
    for name in SCORERS.names():
        s = build_scorer({"name": name, **EXTRA.get(name, {})})
        s.fit(Outputs(torch.randn(40, K) * 3, torch.arange(40) % K), fit)
        r = _scorer_from_state(s.state(), s.buffers())
        assert torch.equal(r.score(out), s.score(out)), name
        assert math.isclose(r.temperature, s.temperature)


@pytest.mark.parametrize("name", SCORERS.names())
def test_confidence_and_labels_is_confidence_and_argmax(name):
    """What a deployed predictor answers with (one reduction for msp) equals ``confidence`` and numpy's argmax (the
    first maximum) bit for bit, ties and NaN rows included."""
    scorer = build_scorer({"name": name, **EXTRA.get(name, {})})
    scorer.fit(Outputs(torch.randn(50, K), torch.arange(50) % K), _fit_split())
    g = torch.Generator().manual_seed(1)
    logits = torch.randint(0, 3, (300, K), generator=g).float()  # many tied maxima
    logits[5] = float("nan")
    out = _confident_vs_flat()
    out = Outputs(logits, mc_probs=out.mc_probs[:, :1].expand(-1, 300, -1), features=torch.randn(300, D, generator=g))
    probs = scorer.probs(out)
    conf, labels = scorer.confidence_and_labels(out, probs)
    ref = scorer.confidence(out, probs)
    assert conf.dtype == ref.dtype and bool(((conf == ref) | (conf.isnan() & ref.isnan())).all())
    assert labels.dtype == torch.int64 and labels.tolist() == np.argmax(probs.numpy(), axis=-1).tolist()
