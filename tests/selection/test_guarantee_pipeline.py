"""selector=risk_guarantee and selector=agreement_guarantee from the command line on the embedded default, shrunk:
results.json carries the certificate, the test disagreement and the cascade keys."""
import json
import math

import pytest

SMALL = ["limit=300", "fit_limit=300", "model.epochs=1", "threads=1", "plots=false", "progress=false", "ood=none",
         "latency.repeats=2"]
CASCADE = ["cascade.accuracy", "cascade.deferral_rate", "cascade.agreement", "cascade.flips", "cascade.cost"]


@pytest.mark.slow
def test_guaranteed_selectors_write_their_certificate(cli, tmp_path):
    r = cli("--multirun", "selector=risk_guarantee,agreement_guarantee", "selector.target=0.05", *SMALL,
            f"cache_dir={tmp_path / 'cache'}", f"hydra.sweep.dir={tmp_path / 'sweep'}")
    assert r.returncode == 0, r.stderr[-3000:]
    runs = {json.loads(p.read_text())["config.selector"]: json.loads(p.read_text())
            for p in (tmp_path / "sweep").rglob("results.json")}
    assert set(runs) == {"risk_guarantee", "agreement_guarantee"}
    for name, res in runs.items():
        for who in ("baseline", "compressed"):
            valid = res[f"{who}.guarantee_valid"]
            assert isinstance(valid, bool)
            assert res[f"{who}.guarantee_target"] == 0.05 and res[f"{who}.guarantee_delta"] == 0.1
            assert res[f"{who}.guarantee_method"].startswith("SGR")
            cov = res[f"{who}.guarantee_calibration_coverage"]
            assert cov == res[f"{who}.calibration_coverage"]
            if valid:
                assert 0 < cov <= 1 and res[f"{who}.guarantee_bound"] <= 0.05
                assert res[f"{who}.guarantee_calibration_loss"] <= res[f"{who}.guarantee_bound"]
            else:   # abstains on everything and said so in one line naming target, delta and the calibration size
                assert cov == 0 and res[f"{who}.guarantee_bound"] is None and res[f"{who}.coverage"] == 0
                assert res[f"{who}.threshold"] == "inf"
                log = r.stdout + r.stderr                                     # Hydra logs to stdout
                assert f"selector={name}: no threshold certifies" in log and "300 calibration samples" in log
        for k in CASCADE:
            assert k in res, k
        assert res["cascade.deferral_rate"] == pytest.approx(1 - res["compressed.coverage"])
        assert res["cascade.cost"] > 0
    agree = runs["agreement_guarantee"]
    assert agree["compressed.guarantee_loss"] == "disagreement with the reference model"
    # the baseline is its own reference: it agrees with itself everywhere, so everything is certified
    assert agree["baseline.guarantee_valid"] is True and agree["baseline.guarantee_calibration_loss"] == 0.0
    assert agree["baseline.selective_disagreement"] == 0.0
    d = agree["compressed.selective_disagreement"]
    assert d is None or 0 <= d <= 1
    assert "compressed.selective_disagreement" not in runs["risk_guarantee"]
    assert not math.isnan(runs["risk_guarantee"]["cascade.agreement"])


def test_python_api_and_predictor_with_agreement_guarantee():
    import torch

    import uqcompress

    g = torch.Generator().manual_seed(0)
    x = torch.randn(3000, 8, generator=g)
    y = (x[:, 0] + 0.5 * x[:, 1] > 0).long()
    model = torch.nn.Sequential(torch.nn.Linear(8, 16), torch.nn.ReLU(), torch.nn.Linear(16, 2))
    opt = torch.optim.Adam(model.parameters(), 1e-2)
    for _ in range(150):
        loss = torch.nn.functional.cross_entropy(model(x[:1000]), y[:1000])
        opt.zero_grad()
        loss.backward()
        opt.step()
    res = uqcompress.evaluate(model, calibration=(x[1000:2000], y[1000:2000]), test=(x[2000:], y[2000:]),
                              quant="int8_dynamic", selector={"name": "agreement_guarantee", "target": 0.01},
                              progress=False)
    m = res.metrics
    assert m["compressed.guarantee_valid"] is True and m["compressed.guarantee_bound"] <= 0.01
    assert m["compressed.guarantee_delta"] == 0.1                       # the constructor's default
    run = res.run
    cal = run.compressed.outputs["calibration"]
    assert torch.equal(cal.reference, run.baseline.probs["calibration"].argmax(-1))
    # the certified threshold on the calibration split: its disagreement there is what facts report
    acc = run.compressed.accept["calibration"]
    disagree = (run.compressed.probs["calibration"].argmax(-1) != cal.reference)[acc].double().mean()
    assert float(disagree) == m["compressed.guarantee_calibration_loss"]
    from uqcompress.predictor import SelectivePredictor

    deployed = SelectivePredictor(run.compressed.bundle, run.compressed.scorer, run.compressed.selector)
    labels, _, accepted = deployed.predict(x[2000:])
    assert torch.equal(accepted, run.compressed.accept["test"])
    assert (labels[~accepted] == -1).all()
