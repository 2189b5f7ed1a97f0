"""uqcompress.evaluate_outputs: stored outputs go through the same pipeline as a model uqcompress runs itself."""
import math

import numpy as np
import pytest
import torch
from scipy.special import softmax
from torch import nn

import uqcompress
from byo_helpers import one_thread  # noqa: F401  (fixture)
from uqcompress.models.train import fit_classifier
from uqcompress.pipeline import scheme_facts

pytestmark = pytest.mark.usefixtures("one_thread")
MODEL_KEYS = ("model_size_bytes", "bits", "sparsity", "device", "latency", "speedup", "cascade.cost")  # cost: latencies


def blobs(n: int, seed: int, shift: float = 0.0):
    g = torch.Generator().manual_seed(seed)
    y = torch.arange(n) % 3
    x = torch.randn(n, 8, generator=g)
    x[:, :2] += torch.tensor([[2.0, 0], [-1.0, 1.7], [-1.0, -1.7]])[y] + shift
    return x, y


@pytest.fixture(scope="module")
def model_run():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(8, 32), nn.ReLU(), nn.Linear(32, 3))
    x, y = blobs(600, seed=1)
    model = fit_classifier(model, x, y, epochs=15, lr=1e-2, batch_size=64, seed=0, progress=False)
    cal, test, ood = blobs(300, seed=2), blobs(400, seed=3), blobs(150, seed=4, shift=9.0)[0]
    return {key: uqcompress.evaluate(model, cal, test, ood=ood, quant="int8_dynamic", uncertainty=unc,
                                     selector={"name": "coverage", "target": 0.8}, progress=False, threads=1,
                                     latency={"repeats": 2, "warmup": 1, "batch_size": 32})
            for key, unc in (("msp", "msp"), ("energy+T", {"name": "energy", "temperature": True}))}


@pytest.mark.parametrize("unc", ["msp", "energy+T"])
def test_stored_outputs_give_exactly_the_metrics_of_the_model_run(model_run, unc):
    """Feed the logits uqcompress.evaluate collected back through evaluate_outputs: every metric key it shares
    with the model run is identical, and only model facts (size, latency, device) are absent."""
    res = model_run[unc]
    b, c = res.run.baseline.outputs, res.run.compressed.outputs
    cat = lambda o: torch.cat([o["calibration"].logits, o["test"].logits])  # noqa: E731
    n_cal = len(b["calibration"])
    mask = np.arange(len(cat(b))) < n_cal
    got = uqcompress.evaluate_outputs(cat(b), cat(c).numpy(), torch.cat([b["calibration"].labels, b["test"].labels]),
                                      calibration=mask, ood_baseline=b["ood"].logits, ood_compressed=c["ood"].logits,
                                      uncertainty="msp" if unc == "msp" else {"name": "energy", "temperature": True},
                                      selector={"name": "coverage", "target": 0.8})
    shared = [k for k in res.metrics if k in got.metrics]
    assert len(shared) > 40
    for k in shared:
        a, g = res.metrics[k], got.metrics[k]
        assert (a == g) or (isinstance(a, float) and math.isnan(a) and math.isnan(g)), k
    missing = sorted(k for k in res.metrics if k not in got.metrics)
    scheme = {f"compressed.{k}" for k in scheme_facts(res.run.baseline.bundle, res.run.compressed.bundle)}
    assert missing and [k for k in missing if not any(w in k for w in MODEL_KEYS) and k not in scheme] == []
    assert "compressed.kl_p99" in got.metrics and got.metrics["all.n"] == len(mask)
    same = got.predictions.drop(columns=["row"]).reset_index(drop=True)
    # the model run's `id` hashes its inputs, which stored outputs do not have (they carry `row` instead)
    assert same.equals(res.predictions.drop(columns=["id"]).reset_index(drop=True))
    with pytest.raises(ValueError, match="a run over stored outputs has no model to deploy"):
        got.predictor


def test_probs_and_torch_inputs_and_default_split():
    rng = np.random.default_rng(0)
    z = rng.normal(size=(500, 4)) * 2
    y = z.argmax(1)
    y[:100] = rng.integers(0, 4, 100)
    zc = z + rng.normal(size=z.shape) * 0.3
    from_logits = uqcompress.evaluate_outputs(torch.from_numpy(z).float(), torch.from_numpy(zc).float(),
                                              torch.from_numpy(y), seed=1)
    from_probs = uqcompress.evaluate_outputs(softmax(z, 1), softmax(zc, 1), y, seed=1)
    for k in ("compressed.flips", "compressed.kl", "baseline.accuracy", "all.compressed.kl_max", "n_test"):
        assert from_probs.metrics[k] == pytest.approx(from_logits.metrics[k], rel=1e-5, abs=1e-7), k
    assert from_logits.metrics["n_test"] + from_logits.metrics["n_calibration"] == 500
    split = np.where(np.arange(500) % 5 == 0, "calibration", "test")
    r = uqcompress.evaluate_outputs(z, zc, y, split=split, kind="logits")
    assert r.metrics["n_calibration"] == 100
    assert r.metrics["all.compressed.flips"] == np.mean((z.argmax(1) == y) != (zc.argmax(1) == y))


def test_refusals_and_errors_are_one_line():
    z = np.random.default_rng(0).normal(size=(50, 3))
    y = np.arange(50) % 3
    with pytest.raises(ValueError, match=r"^uncertainty=mc_dropout needs the model \(MC-dropout passes\)"):
        uqcompress.evaluate_outputs(z, z, y, uncertainty="mc_dropout")
    with pytest.raises(ValueError, match=r"^uncertainty=knn needs the model \(penultimate features\)"):
        uqcompress.evaluate_outputs(z, z, y, uncertainty="knn")
    with pytest.raises(ValueError, match=r"^selector=mc_interval needs the model"):
        uqcompress.evaluate_outputs(z, z, y, selector="mc_interval")
    with pytest.raises(ValueError, match=r"compressed has shape \(50, 2\) but baseline has shape \(50, 3\)"):
        uqcompress.evaluate_outputs(z, z[:, :2], y)
    with pytest.raises(ValueError, match=r"labels has value 3 at row 2, outside \[0, 3\)"):
        uqcompress.evaluate_outputs(z, z, np.where(np.arange(50) == 2, 3, y))
    p = softmax(z, 1)
    p[4] *= 1.1
    with pytest.raises(ValueError, match=r"baseline probs row 4 sums to 1.1, not 1 \(tolerance 0.001\)$"):
        uqcompress.evaluate_outputs(p, softmax(z, 1), y, kind="probs")
    with pytest.raises(ValueError, match=r"baseline probs row 4 sums to 1.1, .*pass kind='logits' if these are logits"):
        uqcompress.evaluate_outputs(p, softmax(z, 1), y)
    with pytest.raises(ValueError, match="pass both ood_baseline and ood_compressed"):
        uqcompress.evaluate_outputs(z, z, y, ood_baseline=z)
    with pytest.raises(ValueError, match="calibration holds row 60, outside the 50 rows"):
        uqcompress.evaluate_outputs(z, z, y, calibration=[1, 60])


def test_every_registered_scorer_and_selector_runs_on_stored_outputs_or_is_refused():
    from uqcompress.outputs import MODEL_NEEDS
    from uqcompress.selection import SELECTORS, build_selector
    from uqcompress.uncertainty import SCORERS, build_scorer

    rng = np.random.default_rng(3)
    z = rng.normal(size=(200, 3)) * 2
    y = z.argmax(1)
    y[:40] = rng.integers(0, 3, 40)
    ran = []
    for group, reg, build in (("uncertainty", SCORERS, build_scorer), ("selector", SELECTORS, build_selector)):
        for name in reg.names():
            needs_model = set(build({"name": name}).needs) & set(MODEL_NEEDS)
            if needs_model:
                with pytest.raises(ValueError, match=rf"^{group}={name} needs the model"):
                    uqcompress.evaluate_outputs(z, z * 0.9, y, **{group: name})
            else:
                res = uqcompress.evaluate_outputs(z, z * 0.9, y, **{group: name})
                assert 0 <= res.metrics["compressed.coverage"] <= 1
                ran.append(name)
    assert {"msp", "entropy", "margin", "energy", "coverage", "risk", "threshold"} <= set(ran)
