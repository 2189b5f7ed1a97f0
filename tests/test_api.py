"""uqcompress.evaluate, the Python front door: a tiny model trained here on synthetic data, its metrics checked
against uqcompress.metrics and against plain numpy recomputed from the returned per-sample predictions."""
import copy

import numpy as np
import pytest
import torch
from sklearn.metrics import roc_auc_score
from torch import nn

import uqcompress
from byo_helpers import one_thread  # noqa: F401  (fixture)
from uqcompress import metrics as M
from uqcompress.models.train import fit_classifier

pytestmark = pytest.mark.usefixtures("one_thread")
OPTS = dict(progress=False, threads=1, latency={"repeats": 2, "warmup": 1, "batch_size": 32})


def blobs(n: int, seed: int, shift: float = 0.0):
    """3 overlapping Gaussian classes in 8-d (about 85% separable); ``shift`` moves them off-distribution."""
    g = torch.Generator().manual_seed(seed)
    y = torch.arange(n) % 3
    centers = torch.tensor([[2.0, 0], [-1.0, 1.7], [-1.0, -1.7]])
    x = torch.randn(n, 8, generator=g)
    x[:, :2] += centers[y] + shift
    return x, y


@pytest.fixture(scope="module")
def trained():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(8, 32), nn.ReLU(), nn.Linear(32, 3))
    x, y = blobs(600, seed=1)
    return fit_classifier(model, x, y, epochs=15, lr=1e-2, batch_size=64, seed=0, progress=False)


@pytest.fixture(scope="module")
def result(trained):
    cal, test = blobs(300, seed=2), blobs(400, seed=3)
    ood = blobs(150, seed=4, shift=9.0)[0]
    return uqcompress.evaluate(trained, cal, test, ood=ood, quant="int8", uncertainty="msp",
                               selector={"name": "coverage", "target": 0.8}, **OPTS)


def onehot(pred, k=3) -> np.ndarray:
    return np.eye(k)[np.asarray(pred)]


def test_metrics_match_uqcompress_metrics_on_the_returned_predictions(result):
    m, p = result.metrics, result.predictions
    t = p[p.split == "test"]
    assert len(t) == 400 and (p.split == "ood").sum() == 150
    y, b, c = t.label.to_numpy(), t.baseline_pred.to_numpy(), t.compressed_pred.to_numpy()
    acc = t.compressed_accepted.to_numpy().astype(bool)
    assert m["baseline.accuracy"] == pytest.approx(M.accuracy(onehot(b), y))
    assert m["compressed.accuracy"] == pytest.approx(M.accuracy(onehot(c), y))
    for k, v in M.flips(onehot(b), onehot(c), y).items():
        assert m[f"compressed.{k}"] == pytest.approx(v), k
    sel = M.selective(t.compressed_confidence.to_numpy(), c == y, acc)
    for k, v in sel.items():
        assert m[f"compressed.{k}"] == pytest.approx(v, nan_ok=True), k
    o = p[p.split == "ood"]
    assert m["compressed.ood_auroc"] == pytest.approx(
        M.ood(t.compressed_confidence.to_numpy(), o.compressed_confidence.to_numpy())["auroc"])


def test_metrics_match_plain_numpy(result):
    """The same numbers from first principles (DESIGN.md definitions), independent of uqcompress.metrics."""
    m, p = result.metrics, result.predictions
    t = p[p.split == "test"]
    y, b, c = t.label.to_numpy(), t.baseline_pred.to_numpy(), t.compressed_pred.to_numpy()
    acc = t.compressed_accepted.to_numpy().astype(bool)
    wrong = c != y
    assert 0.7 < m["baseline.accuracy"] < 0.97  # a real, imperfect model: errors for the selector to catch
    assert m["baseline.accuracy"] == pytest.approx(np.mean(b == y), abs=1e-12)
    assert m["compressed.accuracy"] == pytest.approx(np.mean(c == y), abs=1e-12)
    c2i, i2c = np.mean((b == y) & (c != y)), np.mean((b != y) & (c == y))
    assert m["compressed.c2i"] == pytest.approx(c2i, abs=1e-12)
    assert m["compressed.i2c"] == pytest.approx(i2c, abs=1e-12)
    assert m["compressed.flips"] == pytest.approx(c2i + i2c, abs=1e-12)
    assert m["compressed.all_flips"] == pytest.approx(np.mean(b != c), abs=1e-12)
    assert m["compressed.coverage"] == pytest.approx(acc.mean(), abs=1e-12)
    assert 0.7 < acc.mean() < 0.9  # target 0.8 on calibration carries over to test
    assert m["compressed.selective_risk"] == pytest.approx(wrong[acc].mean(), abs=1e-12)
    assert m["compressed.saved_rate"] == pytest.approx(wrong[~acc].mean(), abs=1e-12)
    assert wrong[~acc].mean() > wrong.mean()  # abstaining on low MSP catches errors more often than chance
    conf_test, conf_ood = t.compressed_confidence.to_numpy(), p[p.split == "ood"].compressed_confidence.to_numpy()
    auroc = roc_auc_score(np.r_[np.zeros(len(conf_test)), np.ones(len(conf_ood))], -np.r_[conf_test, conf_ood])
    assert m["compressed.ood_auroc"] == pytest.approx(auroc, abs=1e-12)
    lb = result.run.baseline.outputs["test"].logits.double().numpy()
    lc = result.run.compressed.outputs["test"].logits.double().numpy()

    def log_softmax(z):
        z = z - z.max(1, keepdims=True)
        return z - np.log(np.exp(z).sum(1, keepdims=True))

    kl = np.mean(np.sum(np.exp(log_softmax(lb)) * (log_softmax(lb) - log_softmax(lc)), 1))
    assert m["compressed.kl"] == pytest.approx(kl, rel=1e-6, abs=1e-12)
    assert m["compressed.kl"] > 0  # int8 really changed the outputs


def test_error_catch_aurc_and_calibration_match_numpy(result):
    """Error catch rate, AURC / E-AURC and ECE / NLL by hand (DESIGN.md definitions)."""
    m, p = result.metrics, result.predictions
    t = p[p.split == "test"]
    y, b = t.label.to_numpy(), t.baseline_pred.to_numpy()
    c = t.compressed_pred.to_numpy()
    acc = t.compressed_accepted.to_numpy().astype(bool)
    assert m["compressed.error_catch_rate"] == pytest.approx(np.sum(~acc & (c != y)) / np.sum(c != y), abs=1e-12)
    conf = t.baseline_confidence.to_numpy()
    assert len(np.unique(conf)) == len(conf)  # float MSP: no ties, so AURC is the plain mean over k
    err = (b != y)[np.argsort(-conf, kind="stable")]
    aurc = np.mean(np.cumsum(err) / np.arange(1, len(err) + 1))
    r = err.mean()
    assert m["baseline.aurc"] == pytest.approx(aurc, abs=1e-7)
    assert m["baseline.eaurc"] == pytest.approx(aurc - (r + (1 - r) * np.log(1 - r)), abs=1e-7)
    probs = result.run.baseline.probs["test"].double().numpy()
    top = probs.max(1)
    bins = np.minimum((top * 15).astype(int), 14)
    ece = sum(np.sum(bins == i) / len(y) * abs(np.mean(b[bins == i] == y[bins == i]) - top[bins == i].mean())
              for i in range(15) if np.any(bins == i))
    assert m["baseline.ece"] == pytest.approx(ece, abs=1e-6)
    assert m["baseline.nll"] == pytest.approx(-np.mean(np.log(probs[np.arange(len(y)), y])), rel=1e-5)


def test_dataset_and_dataloader_inputs_give_the_same_result(trained, result):
    cal, test = blobs(300, seed=2), blobs(400, seed=3)
    ds = torch.utils.data.TensorDataset(*cal)
    dl = torch.utils.data.DataLoader(torch.utils.data.TensorDataset(*test), batch_size=64)
    r2 = uqcompress.evaluate(trained, ds, dl, quant="int8", selector={"name": "coverage", "target": 0.8}, **OPTS)
    for k in ("baseline.accuracy", "compressed.accuracy", "compressed.flips", "compressed.coverage", "compressed.kl"):
        assert r2.metrics[k] == pytest.approx(result.metrics[k], abs=1e-12), k
    assert r2.metrics["n_ood"] == 0 and set(r2.predictions.split) == {"test"}


def test_user_compressed_model_and_uint8_images():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Conv2d(1, 4, 3), nn.BatchNorm2d(4), nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(),
                          nn.Linear(4, 2)).eval()  # BatchNorm: a 0-dim num_batches_tracked in the fingerprinted state
    g = torch.Generator().manual_seed(0)
    x = torch.randint(0, 256, (120, 1, 10, 12), dtype=torch.uint8, generator=g)
    y = (x.float().mean((1, 2, 3)) > 127.5).long()
    other = copy.deepcopy(model)
    with torch.no_grad():
        other[5].bias += torch.tensor([0.3, -0.3])  # a "compressed" model that prefers class 0
    res = uqcompress.evaluate(model, (x[:60], y[:60]), (x[60:], y[60:]), compressed=other, **OPTS)
    assert res.metrics["compressed.scheme"] == "user"
    t = res.predictions
    assert res.metrics["compressed.all_flips"] == pytest.approx(np.mean(t.baseline_pred != t.compressed_pred))
    xf = x[60:].float() / 255  # uint8 images are scaled to [0, 1] before the model sees them
    with torch.no_grad():
        assert t.compressed_pred.tolist() == other(xf).argmax(1).tolist()


def test_bad_api_input_is_one_clear_line(trained):
    cal, test = blobs(30, seed=2), blobs(30, seed=3)
    with pytest.raises(TypeError, match=r"unknown option\(s\) \['epochs'\]; choose from: .*batch_size"):
        uqcompress.evaluate(trained, cal, test, epochs=3)
    with pytest.raises(ValueError, match=r"split 'test' has label 5 outside \[0, 3\)"):
        uqcompress.evaluate(trained, cal, (test[0], torch.full((30,), 5)), quant="none", **OPTS)
    with pytest.raises(ValueError, match="calibration: 30 inputs but 29 labels"):
        uqcompress.evaluate(trained, (cal[0], cal[1][:29]), test, quant="none", **OPTS)
    with pytest.raises(ValueError, match="test needs labels"):
        uqcompress.evaluate(trained, cal, test[0], quant="none", **OPTS)
    with pytest.raises(TypeError, match="model must be a torch.nn.Module"):
        uqcompress.evaluate(lambda v: v, cal, test, **OPTS)


def test_numpy_inputs_and_texts_with_prepare():
    """Notebook inputs: float64 numpy arrays, and texts with a ``prepare`` (here a bag of words) and a text OOD list."""
    vocab = ["good", "great", "bad", "awful", "the", "film"]

    def bow(texts):
        return torch.tensor([[t.split().count(w) for w in vocab] for t in texts], dtype=torch.float32)

    model = nn.Linear(len(vocab), 2)
    with torch.no_grad():
        model.weight.copy_(torch.tensor([[0, 0, 1, 1, 0, 0], [1, 1, 0, 0, 0, 0]], dtype=torch.float32))
        model.bias.zero_()
    rng = np.random.default_rng(0)
    texts = [f"the film {rng.choice(vocab[:4])}" for _ in range(80)]
    labels = np.array([int(t.split()[-1] in ("good", "great")) for t in texts])
    res = uqcompress.evaluate(model, (texts[:40], labels[:40]), (texts[40:], labels[40:]),
                              ood=["the the film", "film"] * 10, prepare=bow, quant="none", **OPTS)
    assert res.metrics["baseline.accuracy"] == 1.0 and res.metrics["n_ood"] == 20
    assert res.run.baseline.bundle.modality == "text"
    x64, y = blobs(60, seed=5)
    lin = nn.Linear(8, 3)
    r = uqcompress.evaluate(lin, (x64[:30].double().numpy(), y[:30].numpy()), (x64[30:].numpy(), y[30:].numpy()),
                            quant="none", **OPTS)
    with torch.no_grad():
        assert r.predictions.baseline_pred.tolist() == lin(x64[30:]).argmax(1).tolist()
    with pytest.raises(ValueError, match=r"test: labels must be integer class ids, got <U3 values such as 'pos'"):
        uqcompress.evaluate(lin, (x64[:30], y[:30]), (x64[30:], np.array(["pos"] * 30)), quant="none", **OPTS)


def test_every_run_reports_the_kl_distribution_of_its_test_split(result):
    """compressed.kl_* (llama.cpp-style KL statistics) are M.kl_distribution of the two models' test logits."""
    m = result.metrics
    dist = M.kl_distribution(result.run.baseline.outputs["test"].logits, result.run.compressed.outputs["test"].logits)
    assert m["compressed.kl"] == pytest.approx(dist["kl_mean"], rel=1e-12)
    for k in M.KL_DISTRIBUTION_KEYS[1:]:
        assert m[f"compressed.{k}"] == dist[k], k
    assert 0 <= m["compressed.kl_median"] <= m["compressed.kl_p99"] <= m["compressed.kl_max"]
