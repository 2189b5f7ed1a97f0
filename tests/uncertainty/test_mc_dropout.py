"""MC-dropout passes: stochastic, seeded, only dropout in train mode, working on int8 FX graphs and on models without
dropout, with tensors and dicts of tensors, in full and head mode (run by the Runner); cached by Runner.outputs."""
import logging

import pytest
import torch
from torch import nn

from uqcompress.compress import compress
from uqcompress.data import Split
from uqcompress.models.base import ModelBundle
from uqcompress.models.small_cnn import SmallCNN
from uqcompress.runner import Runner
from uqcompress.uncertainty.mc import MCOptions, dropout, stack_copies


def mc_probs(bundle, x, opts, batch_size=256, progress=False):
    return Runner("cpu", batch_size, progress).mc_probs(bundle, x, opts, split="test")


def penultimate_features(bundle, x, batch_size=256, progress=False):
    return Runner("cpu", batch_size, progress).features(bundle, x, split="test")


@pytest.fixture(scope="module")
def cnn():
    torch.manual_seed(0)
    return ModelBundle(SmallCNN(width=8, hidden=16).eval(), "small_cnn", "cnn-test", "image", 10, head="classifier.4")


@pytest.fixture(scope="module")
def cnn_int8(cnn):
    return compress(cnn, {"name": "int8"}, torch.rand(32, 1, 14, 14))


X = torch.rand(20, 1, 14, 14, generator=torch.Generator().manual_seed(1))


@pytest.mark.parametrize("which", ["float", "int8"])
@pytest.mark.parametrize("mode", ["full", "head"])
def test_passes_differ_and_same_seed_reproduces(cnn, cnn_int8, which, mode):
    b = cnn if which == "float" else cnn_int8
    opts = MCOptions(samples=6, mode=mode, seed=3)
    p1 = mc_probs(b, X, opts, batch_size=32, progress=False)
    p2 = mc_probs(b, X, opts, batch_size=32, progress=False)
    assert p1.shape == (6, 20, 10)
    assert torch.allclose(p1.sum(-1), torch.ones(6, 20))
    assert p1.std(0).max() > 0, "MC passes must differ"
    assert torch.equal(p1, p2), "same seed must give the same passes"
    assert not torch.equal(p1, mc_probs(b, X, MCOptions(samples=6, mode=mode, seed=4), 32, False))


def test_full_mode_batching_does_not_change_the_distribution_of_work(cnn):
    # batch_size < T: one data row per step, T split into chunks; still (T, N, K) and stochastic
    p = mc_probs(cnn, X[:3], MCOptions(samples=7, mode="full"), batch_size=2, progress=False)
    assert p.shape == (7, 3, 10) and p.std(0).max() > 0


def test_only_dropout_modules_go_to_train_mode(cnn):
    seen = {}
    hooks = [m.register_forward_pre_hook(lambda mod, args, n=n: seen.__setitem__(n, mod.training))
             for n, m in cnn.module.named_modules() if n]
    bn = cnn.module.features[1]
    before = (bn.running_mean.clone(), bn.running_var.clone(), int(bn.num_batches_tracked))
    try:
        mc_probs(cnn, X, MCOptions(samples=3), progress=False)
    finally:
        for h in hooks:
            h.remove()
    training = {n for n, t in seen.items() if t}
    assert training == {"classifier.0", "classifier.3"}
    assert torch.equal(bn.running_mean, before[0]) and torch.equal(bn.running_var, before[1])
    assert int(bn.num_batches_tracked) == before[2]
    assert not any(m.training for m in cnn.module.modules()), "modes restored after the passes"


@pytest.fixture
def fresh_log(monkeypatch):
    """MC log lines are said once per model per process: forget what was said."""
    from uqcompress.uncertainty import mc

    monkeypatch.setattr(mc, "_logged", set())


def test_int8_graph_revives_its_dropout_placeholders_and_says_so(cnn_int8, caplog, fresh_log):
    import torch.ao.nn.quantized as nnq

    mods = list(cnn_int8.module.modules())
    assert any(isinstance(m, nnq.Linear) for m in mods)
    assert sum(isinstance(m, nnq.Dropout) for m in mods) == 2  # FX keeps nn.Dropout as a no-op placeholder
    with caplog.at_level(logging.INFO, logger="uqcompress.uncertainty.mc"):
        p = mc_probs(cnn_int8, X, MCOptions(samples=4, seed=11), progress=False)
    assert "QuantizedDropout placeholders; revived" in caplog.text
    assert p.std(0).max() > 0


def test_quantized_dropout_is_exact_dropout_of_the_dequantized_values():
    x = torch.quantize_per_tensor(torch.rand(64, 32) * 4, 0.05, 3, torch.quint8)
    torch.manual_seed(0)
    y = dropout(x, 0.25)
    xd, yd = x.dequantize(), y.dequantize()
    kept = yd != 0
    assert 0.6 < kept.float().mean() < 0.9
    assert torch.allclose(yd[kept], xd[kept] / 0.75, rtol=1e-5, atol=1e-6)


def test_model_without_dropout_gets_it_injected_before_the_head(caplog, fresh_log):
    net = nn.Sequential(nn.Linear(5, 16), nn.ReLU(), nn.Linear(16, 3)).eval()
    b = ModelBundle(net, "mlp", "mlp-test", "image", 3, head="2")
    x = torch.randn(10, 5)
    with caplog.at_level(logging.INFO, logger="uqcompress.uncertainty.mc"):
        p = mc_probs(b, x, MCOptions(samples=5, p=0.2), progress=False)
    assert "has no dropout module; injecting dropout p=0.2 before its head '2'" in caplog.text
    assert p.std(0).max() > 0
    assert not net._forward_pre_hooks and not net[2]._forward_pre_hooks, "hooks removed after"
    nohead = ModelBundle(net, "mlp", "mlp-test2", "image", 3)
    with pytest.raises(ValueError, match="names no classifier head"):
        mc_probs(nohead, x, MCOptions(samples=2), progress=False)


class DictModel(nn.Module):
    """A text-like model: dict inputs (ids, mask), embedding + masked mean + dropout + head."""

    def __init__(self):
        super().__init__()
        self.emb = nn.Embedding(50, 12)
        self.drop = nn.Dropout(0.3)
        self.head = nn.Linear(12, 4)

    def forward(self, input_ids, attention_mask):
        h = (self.emb(input_ids) * attention_mask[..., None]).sum(1) / attention_mask.sum(1, keepdim=True)
        return self.head(self.drop(h))


def _tokenize(texts):
    ids = [[(ord(c) % 49) + 1 for c in t[:8]] for t in texts]
    n = max(map(len, ids))
    return {"input_ids": torch.tensor([i + [0] * (n - len(i)) for i in ids]),
            "attention_mask": torch.tensor([[1.0] * len(i) + [0.0] * (n - len(i)) for i in ids])}


def test_dict_inputs_are_stacked_along_the_batch_dimension():
    torch.manual_seed(0)
    b = ModelBundle(DictModel().eval(), "dict", "dict-test", "text", 4, prepare=_tokenize, head="head")
    texts = ["hello there", "abc", "a longer sentence", "x"]
    stacked = stack_copies(_tokenize(texts), 3)
    assert stacked["input_ids"].shape[0] == 12 and torch.equal(stacked["input_ids"][4:8], stacked["input_ids"][:4])
    for mode in ("full", "head"):
        p = mc_probs(b, texts, MCOptions(samples=5, mode=mode), batch_size=8, progress=False)
        assert p.shape == (5, 4, 4) and p.std(0).max() > 0
    assert penultimate_features(b, texts, progress=False).shape == (4, 12)


def test_head_mode_refuses_a_head_that_is_not_the_last_layer():
    net = nn.Sequential(nn.Linear(5, 8), nn.Dropout(0.2), nn.Linear(8, 3), nn.Tanh()).eval()
    b = ModelBundle(net, "mlp", "mlp-tanh", "image", 3, head="2")
    with pytest.raises(ValueError, match="use uncertainty.mode=full"):
        mc_probs(b, torch.randn(4, 5), MCOptions(samples=2, mode="head"), progress=False)


def test_head_mode_costs_one_backbone_pass(cnn):
    calls = []
    h = cnn.module.features.register_forward_hook(lambda *a: calls.append(1))
    try:
        mc_probs(cnn, X, MCOptions(samples=30, mode="head"), batch_size=64, progress=False)
    finally:
        h.remove()
    assert len(calls) == 1


def test_features_of_int8_graph_are_dequantized(cnn, cnn_int8):
    f = penultimate_features(cnn, X, progress=False)
    q = penultimate_features(cnn_int8, X, progress=False)
    assert f.shape == q.shape == (20, 16) and q.dtype == torch.float32
    assert (f - q).abs().max() < 0.1 * f.abs().max() + 1e-3  # int8 features approximate float ones


def test_outputs_cache_by_settings(cnn, tmp_cache, monkeypatch):
    calls = []
    real = Runner.mc_probs
    monkeypatch.setattr(Runner, "mc_probs", lambda *a, **k: calls.append(1) or real(*a, **k))
    split = Split(X[:8])
    for seed in (0, 0, 1):
        out = Runner(progress=False).outputs(cnn, "test", split, {"mc", "features"},
                                             {"samples": 3, "seed": seed, "name": "x"})
        assert out.mc_probs.shape == (3, 8, 10) and out.features.shape == (8, 16)
        assert torch.equal(out.logits, cnn.logits(split.x))
    assert len(calls) == 2, "same settings -> cache hit; another seed -> a new entry"
    assert (tmp_cache / "mc").is_dir() and (tmp_cache / "features").is_dir()


@pytest.mark.slow  # importing brevitas takes several seconds
@pytest.mark.parametrize("mode", ["full", "head"])
def test_brevitas_model_keeps_its_quantizers_frozen(mode):
    qnn = pytest.importorskip("brevitas.nn")
    torch.manual_seed(0)
    net = nn.Sequential(qnn.QuantLinear(8, 16, bias=True, weight_bit_width=4), qnn.QuantReLU(bit_width=4),
                        nn.Dropout(0.2), qnn.QuantLinear(16, 3, bias=True, weight_bit_width=4)).eval()
    b = ModelBundle(net, "brevitas_mlp", f"brev-{mode}", "image", 3, head="3")
    x = torch.randn(10, 8)
    seen = {}
    hooks = [m.register_forward_pre_hook(lambda mod, args, n=n: seen.__setitem__(n, mod.training))
             for n, m in net.named_modules() if n]
    try:
        p1 = mc_probs(b, x, MCOptions(samples=4, mode=mode), progress=False)
    finally:
        for h in hooks:
            h.remove()
    assert p1.std(0).max() > 0
    assert torch.equal(p1, mc_probs(b, x, MCOptions(samples=4, mode=mode), progress=False))
    assert {n for n, t in seen.items() if t} <= {"2"}, "only the dropout module may be in train mode"
