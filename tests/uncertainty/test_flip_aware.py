"""uncertainty=flip_aware (issue 28): it learns where answers flip (beats msp where flips are predictable), its
calibration scores are out of fold (checked against sklearn's cross_val_predict), the test split's baseline answers
never reach it, agreement_guarantee with it keeps its promise over seeded resplits, it runs with every selector, and
its predictor file loads with weights_only=True and predicts bit-identically."""
import numpy as np
import pytest
import torch

from uqcompress.pipeline import score_outputs
from uqcompress.selection import SELECTORS, build_selector
from uqcompress.uncertainty import build_scorer
from uqcompress.uncertainty.base import Outputs
from uqcompress.uncertainty.flip_aware import flip_features

K, D = 5, 6


@pytest.fixture(autouse=True)
def one_thread():
    """Tiny (N, K) tensors: one torch thread (on a loaded machine OpenMP hand-offs cost more than the work)."""
    old = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(old)


def synthetic(n: int, seed: int) -> tuple[Outputs, Outputs]:
    """(split with the baseline's answers in ``reference``, fit split). Flips happen where the compressed model's
    features lie far from their class mean and on predicted class 3, at confidence levels like the others'."""
    g = torch.Generator().manual_seed(seed)
    y = torch.randint(0, K, (n,), generator=g)
    far = torch.rand(n, generator=g) < 0.15
    feats = torch.eye(K, D)[y] * 4 + torch.randn(n, D, generator=g) * torch.where(far, 3.0, 0.5)[:, None]
    logits = torch.randn(n, K, generator=g) * 2
    pred = logits.argmax(-1)
    p_flip = 0.02 + 0.5 * far.double() + 0.3 * (pred == 3).double()
    flip = torch.rand(n, generator=g, dtype=torch.float64) < p_flip
    ref = torch.where(flip, (pred + 1 + torch.randint(0, K - 1, (n,), generator=g)) % K, pred)
    fit_y = torch.randint(0, K, (400,), generator=g)
    fit_x = torch.eye(K, D)[fit_y] * 4 + torch.randn(400, D, generator=g) * 0.5
    fit = Outputs(torch.zeros(400, K), fit_y, features=fit_x)
    return Outputs(logits, ref.clone(), features=feats, reference=ref), fit


def catch_at(conf: torch.Tensor, flipped: torch.Tensor, coverage: float = 0.9) -> float:
    """Share of flipped samples among the (1 - coverage) least confident."""
    n_abstain = int(round((1 - coverage) * len(conf)))
    low = torch.argsort(conf, stable=True)[:n_abstain]
    return float(flipped[low].double().sum() / flipped.double().sum())


@pytest.mark.parametrize("fitting", ["crossfit", "split"])
def test_flip_aware_catches_more_predictable_flips_than_msp(fitting):
    cal, fit = synthetic(3000, 0)
    test, _ = synthetic(4000, 1)
    flipped = test.logits.argmax(-1) != test.reference
    test_in = Outputs(test.logits, features=test.features)   # what deployment has: no baseline
    s = build_scorer({"name": "flip_aware", "fitting": fitting}).fit(cal, fit)
    assert not s.facts()["flip_aware_fallback"]
    fa = catch_at(s.score(test_in), flipped)
    msp = catch_at(build_scorer({"name": "msp"}).score(test_in), flipped)
    assert fa > msp + 0.2, (fa, msp)


def test_crossfit_calibration_scores_are_sklearns_out_of_fold_decision_function():
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import StratifiedKFold, cross_val_predict
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    cal, fit = synthetic(1500, 2)
    s = build_scorer({"name": "flip_aware", "fitting": "crossfit", "folds": 4, "seed": 7}).fit(cal, fit)
    x = flip_features(cal.logits, 1.0, cal.features, s.means, float(s.scale), s.components, s.center).numpy()
    flip = (cal.logits.argmax(-1) != cal.reference).numpy()
    model = make_pipeline(StandardScaler(), LogisticRegression(class_weight="balanced", solver="newton-cholesky"))
    ref = cross_val_predict(model, x, flip, cv=StratifiedKFold(4, shuffle=True, random_state=7),
                            method="decision_function")
    oof = s.calibration_score(cal).numpy()
    np.testing.assert_allclose(oof, -ref, rtol=1e-5, atol=1e-6)
    in_sample = s.score(cal).numpy()
    assert not np.allclose(oof, in_sample)   # the selector does not see the in-sample scores


def test_split_fits_the_selector_only_on_rows_the_scorer_did_not_see():
    cal, fit = synthetic(1000, 3)
    test, _ = synthetic(500, 4)
    scorer = build_scorer({"name": "flip_aware"})              # fitting=auto -> split for a certifying selector
    selector = build_selector({"name": "agreement_guarantee", "target": 0.1, "delta": 0.1})
    ref = {"calibration": cal.reference, "test": test.reference}
    ev = score_outputs({"calibration": cal, "test": Outputs(test.logits, test.labels, features=test.features)},
                       scorer, selector, fit, ref)
    assert ev.metrics["flip_aware_fitting"] == "split"
    rows = scorer.selection_rows
    assert len(rows) == 500 and ev.metrics["flip_aware_selection_samples"] == 500
    assert selector.fit_result.n == 500                          # the bound counts part B only
    # refit on part A alone gives the same scorer: part B's labels never entered the fit
    a = torch.tensor(sorted(set(range(1000)) - set(rows.tolist())))
    cal_a = Outputs(cal.logits[a], cal.labels[a], features=cal.features[a], reference=cal.reference[a])
    alone = build_scorer({"name": "flip_aware", "fitting": "crossfit", "folds": 2})
    w_check = build_scorer({"name": "flip_aware", "fitting": "split"})
    w_check.for_selector(selector)
    changed = cal.reference.clone()
    changed[rows] = (changed[rows] + 1) % K                      # scramble B's reference answers
    w_check.fit(Outputs(cal.logits, cal.labels, features=cal.features, reference=changed), fit)
    assert torch.equal(w_check.weight, scorer.weight) and torch.equal(w_check.bias, scorer.bias)
    assert alone.fit(cal_a, fit).weight is not None


@pytest.mark.parametrize("selector_name", ["coverage", "agreement_guarantee"])
def test_the_test_splits_baseline_answers_never_reach_the_scorer(selector_name):
    cal, fit = synthetic(800, 5)
    test, _ = synthetic(600, 6)
    seen = []

    def run(test_ref: torch.Tensor) -> torch.Tensor:
        scorer = build_scorer({"name": "flip_aware"})
        fit_orig = scorer.fit

        def spy(calibration, fit_split=None):
            seen.append(calibration.reference)
            return fit_orig(calibration, fit_split)

        scorer.fit = spy
        outs = {"calibration": Outputs(cal.logits, cal.labels, features=cal.features),
                "test": Outputs(test.logits, test.labels, features=test.features)}
        ev = score_outputs(outs, scorer, build_selector({"name": selector_name}), fit,
                           {"calibration": cal.reference, "test": test_ref})
        return ev.confidence["test"], ev.accept["test"]

    conf1, acc1 = run(test.reference)
    conf2, acc2 = run(torch.randint(0, K, (600,), generator=torch.Generator().manual_seed(9)))
    assert torch.equal(conf1, conf2) and torch.equal(acc1, acc2)
    assert len(seen) == 2 and all(torch.equal(r, cal.reference) for r in seen)


@pytest.mark.parametrize("fitting", ["auto", pytest.param("crossfit", marks=pytest.mark.slow)])
def test_agreement_guarantee_with_flip_aware_holds_over_resplits(fitting):
    """200 seeded calibration draws; the disagreement rate among accepted inputs is measured on a 20,000-sample
    population sample. Violations must stay <= delta + 2 s.e. (auto = the exact split mode; crossfit: approximate,
    checked on this setting)."""
    target, delta, draws = 0.08, 0.1, 200
    pop, fit = synthetic(20000, 100)
    pop_in = Outputs(pop.logits, features=pop.features)
    disagree = pop.logits.argmax(-1) != pop.reference
    violations, covered = 0, []
    for r in range(draws):
        cal, _ = synthetic(1000, 1000 + r)
        scorer = build_scorer({"name": "flip_aware", "seed": r, "fitting": fitting})
        selector = build_selector({"name": "agreement_guarantee", "target": target, "delta": delta})
        score_outputs({"calibration": cal, "test": Outputs(cal.logits[:2], cal.labels[:2], features=cal.features[:2])},
                      scorer, selector, fit, {"calibration": cal.reference, "test": cal.reference[:2]})
        acc = scorer.score(pop_in) >= selector.threshold
        covered.append(float(acc.double().mean()))
        if acc.any() and float(disagree[acc].double().mean()) > target:
            violations += 1
    se = (delta * (1 - delta) / draws) ** 0.5
    assert violations / draws <= delta + 2 * se, violations
    assert np.mean(covered) > 0.3   # it certifies something: not a vacuous pass


@pytest.mark.parametrize("selector_name", SELECTORS.names())
def test_flip_aware_runs_with_every_selector(selector_name):
    from tests.uncertainty.test_uncertainty_pipeline import group

    cal, fit = synthetic(600, 7)
    test, _ = synthetic(300, 8)
    g = torch.Generator().manual_seed(0)
    for o in (cal, test):
        o.mc_probs = torch.softmax(o.logits[None] + torch.randn(4, len(o), K, generator=g), -1)
    scorer = build_scorer({"name": "flip_aware", "mc": True, "samples": 4})
    ev = score_outputs({"calibration": Outputs(cal.logits, cal.labels, cal.mc_probs, cal.features),
                        "test": Outputs(test.logits, test.labels, test.mc_probs, test.features)},
                       scorer, build_selector(group("selector", selector_name)), fit,
                       {"calibration": cal.reference, "test": test.reference})
    m = ev.metrics
    assert 0 <= m["coverage"] <= 1 and not m["flip_aware_fallback"]
    assert m["flip_aware_fitting"] == ("split" if selector_name.endswith("guarantee") else "crossfit")


def test_without_flips_it_is_msp():
    cal, fit = synthetic(300, 9)
    cal.reference = cal.logits.argmax(-1)
    s = build_scorer({"name": "flip_aware"}).fit(cal, fit)
    assert s.facts()["flip_aware_fallback"]
    assert torch.allclose(s.score(cal), build_scorer({"name": "msp"}).score(cal), rtol=0, atol=1e-12)


def test_predictor_with_flip_aware_loads_weights_only_and_predicts_bit_identically(tmp_path):
    from uqcompress.compress import compress
    from uqcompress.models import MODELS
    from uqcompress.predictor import SelectivePredictor

    torch.manual_seed(0)
    spec = {"model": {"name": "small_cnn", "width": 8, "hidden": 16}, "input_shape": [1, 14, 14]}
    base = MODELS.get("small_cnn").rebuild_architecture(spec["model"], 10, (1, 14, 14))
    comp = compress(base, {"name": "int8"}, torch.rand(32, 1, 14, 14))
    x = torch.rand(200, 1, 14, 14, generator=torch.Generator().manual_seed(1))
    pred = SelectivePredictor(comp, build_scorer({"name": "flip_aware", "projection": 2, "mc": True, "samples": 3}),
                              build_selector({"name": "coverage", "target": 0.8}),
                              spec={**spec, "quant": {"name": "int8"}})
    out = pred.outputs(x)
    y = torch.arange(200) % 10
    ref = out.logits.argmax(-1).clone()
    ref[::4] = (ref[::4] + 1) % 10                                # a baseline that differs on a quarter
    out.labels, out.reference = y, ref
    pred.scorer.fit(out, Outputs(out.logits, y, features=out.features))
    assert not pred.scorer.facts()["flip_aware_fallback"]
    pred.selector.fit(pred.scorer.calibration_score(out), pred.scorer.probs(out).argmax(-1) == y, out)
    path = pred.save(tmp_path / "p.pt")
    payload = torch.load(path, weights_only=True)
    assert {"weight", "bias", "means", "components"} <= set(payload["scorer_buffers"])
    loaded = SelectivePredictor.load(path)
    for u, v in zip(pred.predict(x), loaded.predict(x)):
        assert torch.equal(u, v)


def test_disagreement_catch_rate_and_flip_catch_plot(tmp_path):
    from uqcompress.pipeline import compare, predictions_frame
    from uqcompress.report.plots import flip_catch_curves

    cal, fit = synthetic(800, 11)
    test, _ = synthetic(500, 12)
    mk = lambda o, z: Outputs(z, o.labels, features=o.features)  # noqa: E731
    base_logits = {"calibration": torch.nn.functional.one_hot(cal.reference, K).float() * 5,
                   "test": torch.nn.functional.one_hot(test.reference, K).float() * 5}
    base = score_outputs({k: mk(o, base_logits[k]) for k, o in (("calibration", cal), ("test", test))},
                         build_scorer({"name": "msp"}), build_selector({"name": "coverage"}))
    comp = score_outputs({"calibration": mk(cal, cal.logits), "test": mk(test, test.logits)},
                         build_scorer({"name": "flip_aware"}), build_selector({"name": "coverage"}), fit,
                         {"calibration": cal.reference, "test": test.reference})
    differ = (test.logits.argmax(-1) != test.reference).numpy()
    accepted = comp.accept["test"].numpy()
    expect = float((~accepted[differ]).mean())
    assert compare(base, comp)["disagreement_catch_rate"] == pytest.approx(expect, abs=1e-12)
    path = flip_catch_curves({"flip_aware": predictions_frame(base, comp)}, tmp_path / "fc.png")
    assert path.is_file() and path.stat().st_size > 1000


def test_deploy_export_of_a_flip_aware_run_reproduces_its_scores(tmp_path, tmp_cache):
    from tests.test_predictor import RUN
    from uqcompress.pipeline import load_data, run_config
    from uqcompress.predictor import SelectivePredictor

    path = tmp_path / "pred.pt"
    cfg = {**RUN, "uncertainty": {"name": "flip_aware", "seed": 0}, "deploy": {"export": str(path)}}
    res = run_config(cfg)
    data, _ = load_data(cfg)
    labels, conf, accepted = SelectivePredictor.load(path).predict(data["test"].x)
    assert torch.equal(conf, res.compressed.confidence["test"]) and torch.equal(accepted, res.compressed.accept["test"])
    assert "compressed.disagreement_catch_rate" in res.metrics and "compressed.flip_aware_fitting" in res.metrics
