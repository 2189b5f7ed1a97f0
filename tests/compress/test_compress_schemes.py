"""Every scheme really changes the model (weights, dtype or storage) and keeps the output shape; per-scheme facts."""
from __future__ import annotations

import pytest
import torch
from torch import nn

from uqcompress.compress import SCHEMES, CompressContext, compress
from uqcompress.compress.prune import nm_mask
from uqcompress.measure import dense_weight, state_dict_bytes, weight_sparsity
from uqcompress.models.base import ModelBundle

ALL = ["fp16", "bf16", "int8", "int8_dynamic", "int8_weight_only", "int4_weight_only", "brevitas_w8a8",
       "brevitas_w4a8", "brevitas_w4a4", "prune_global_l1", "prune_2of4", "prune_int8", "chain"]
CTX = CompressContext(progress=False, batch_size=16)


def _load_yaml(name: str) -> dict:
    from pathlib import Path

    from omegaconf import OmegaConf

    path = Path(__file__).resolve().parents[2] / "uqcompress" / "conf" / "quant" / f"{name}.yaml"
    return OmegaConf.to_container(OmegaConf.load(path), resolve=True)


def _weights(module: nn.Module) -> dict[str, torch.Tensor]:
    return {n: w for n, m in module.named_modules() if (w := dense_weight(m)) is not None and m is not module}


def test_every_registered_scheme_has_a_yaml_and_is_tested():
    # drop_layers applies to transformer stacks only; tests/compress/test_drop_layers.py covers it. amp keeps the
    # weights and changes how they compute (torch.autocast): tests/test_runner.py covers it
    assert set(SCHEMES.names()) == set(ALL) | {"none", "drop_layers", "amp"}
    for name in ALL + ["none", "drop_layers", "amp"]:
        assert _load_yaml(name)["name"] == name


@pytest.mark.parametrize("name", ALL)
def test_scheme_changes_weights_and_keeps_shapes(name, cnn_bundle, images):
    cfg = _load_yaml(name)
    base_w = _weights(cnn_bundle.module)
    base_sd = {k: v.clone() for k, v in cnn_bundle.module.state_dict().items()}
    out = compress(cnn_bundle, cfg, images, CTX)
    assert out.module is not cnn_bundle.module
    assert out.fingerprint != cnn_bundle.fingerprint
    logits = out.logits(images[:5])
    assert logits.shape == (5, 10) and logits.dtype == torch.float32 and torch.isfinite(logits).all()
    # the baseline is never modified
    assert all(torch.equal(base_sd[k], v) for k, v in cnn_bundle.module.state_dict().items())
    # the weights really changed: dtype, storage or values, on at least one layer
    comp_sd = out.module.state_dict()
    dtype_changed = any(isinstance(v, torch.Tensor) and v.dtype != torch.float32 and v.is_floating_point()
                        for v in comp_sd.values())
    new_w = _weights(out.module)
    value_changed = any(n in base_w and not torch.equal(w, base_w[n]) for n, w in new_w.items())
    storage_changed = state_dict_bytes(out.module) < 0.5 * state_dict_bytes(cnn_bundle.module)
    assert dtype_changed or value_changed or storage_changed, name
    expected = {"prune_int8": "prune_global_l1+int8", "chain": "prune_global_l1+int8_dynamic"}.get(name, name)
    assert out.info["scheme"] == expected
    assert isinstance(out.info["bits"], int) and isinstance(out.info["simulated"], bool)


def test_fp16_bf16_cast_weights_and_return_float32(cnn_bundle, images):
    for name, dtype in (("fp16", torch.float16), ("bf16", torch.bfloat16)):
        out = compress(cnn_bundle, {"name": name}, None, CTX)
        assert {p.dtype for p in out.module.parameters()} == {dtype}
        ref = cnn_bundle.logits(images[:8])
        got = out.logits(images[:8])
        assert got.dtype == torch.float32
        tol = 0.05 if dtype == torch.float16 else 0.2
        assert (got - ref).abs().max() < tol and not torch.equal(got, ref)
        assert state_dict_bytes(out.module) < 0.6 * state_dict_bytes(cnn_bundle.module)
        assert out.info["bits"] == 16 and "note" in out.info


def test_int8_static_is_int8_and_much_smaller():
    from uqcompress.models.base import ModelBundle
    from uqcompress.models.small_cnn import SmallCNN

    torch.manual_seed(0)
    net = SmallCNN().eval()  # the embedded default architecture (width 32)
    b = ModelBundle(net, "small_cnn", "cnn32", "image", 10, head="classifier.4")
    x = torch.rand(64, 1, 28, 28)
    out = compress(b, {"name": "int8", "calibration_samples": 64}, x, CTX)
    assert state_dict_bytes(out.module) <= 0.3 * state_dict_bytes(net)
    qdtypes = {v.dtype for v in out.module.state_dict().values() if isinstance(v, torch.Tensor)}
    assert torch.qint8 in qdtypes
    assert out.info["calibration_samples"] == 64 and out.info["bits"] == 8


def test_int8_dynamic_quantizes_linear_and_lstm():
    from uqcompress.models.base import ModelBundle

    class Tagger(nn.Module):
        def __init__(self):
            super().__init__()
            self.emb = nn.Embedding(50, 16)
            self.lstm = nn.LSTM(16, 32, batch_first=True)
            self.fc = nn.Linear(32, 4)

        def forward(self, x):
            return self.fc(self.lstm(self.emb(x))[0][:, -1])

    torch.manual_seed(0)
    b = ModelBundle(Tagger().eval(), "tagger", "t", "text", 4, head="fc")
    out = compress(b, {"name": "int8_dynamic"}, None, CTX)
    assert out.module.lstm._get_name() == "DynamicQuantizedLSTM"
    assert out.module.fc._get_name() == "DynamicQuantizedLinear"
    x = torch.randint(0, 50, (3, 7))
    assert out.logits(x).shape == (3, 4)
    assert (out.logits(x) - b.logits(x)).abs().max() < 0.1


def _levels_per_group(w: torch.Tensor, group: int) -> int:
    return max(int(g.unique().numel()) for g in w.reshape(-1, group))


def test_weight_only_levels(cnn_bundle, images):
    int8 = compress(cnn_bundle, {"name": "int8_weight_only"}, None, CTX)
    w8 = dense_weight(int8.module.classifier[1])
    assert type(int8.module.classifier[1].weight).__name__ == "Int8Tensor"
    assert _levels_per_group(w8, w8.shape[1]) <= 256
    assert int8.info["simulated"] is False and int8.info["bits"] == 8

    int4 = compress(cnn_bundle, {"name": "int4_weight_only", "group_size": 32}, None, CTX)
    w4 = dense_weight(int4.module.classifier[1])
    assert _levels_per_group(w4, 32) <= 16 < _levels_per_group(cnn_bundle.module.classifier[1].weight, 32)
    assert int4.info["simulated"] is True and int4.info["bits"] == 4  # no CPU int4 kernel: said so
    assert (w4 - cnn_bundle.module.classifier[1].weight).abs().max() > 0


@pytest.mark.parametrize("wb,ab", [(4, 8), (3, None)])
def test_brevitas_bits_and_calibration(cnn_bundle, images, wb, ab):
    cfg = {"name": "brevitas_w4a8", "weight_bits": wb, "act_bits": ab, "calibration_samples": 32}
    out = compress(cnn_bundle, cfg, images, CTX)
    layer = out.module.classifier[1]
    assert type(layer).__name__ == "QuantLinear"
    qw = layer.quant_weight().value.detach()
    assert max(int(r.unique().numel()) for r in qw) <= 2 ** wb  # per-output-channel scale, wb-bit levels
    assert out.info["bits"] == wb and out.info["act_bits"] == ab and out.info["simulated"] is True
    assert out.info["calibration_samples"] == (32 if ab else 0)


def test_prune_global_l1_measured_sparsity_and_head_kept(cnn_bundle):
    out = compress(cnn_bundle, {"name": "prune_global_l1", "amount": 0.5}, None, CTX)
    names = [n for n, m in out.module.named_modules() if isinstance(m, (nn.Linear, nn.Conv2d)) and n != "classifier.4"]
    assert abs(weight_sparsity(out.module, names) - 0.5) <= 0.01
    assert abs(out.info["sparsity"] - 0.5) <= 0.01
    assert torch.equal(out.module.classifier[4].weight, cnn_bundle.module.classifier[4].weight)
    assert not any("weight_orig" in k or "weight_mask" in k for k in out.module.state_dict())  # prune.remove ran
    with_head = compress(cnn_bundle, {"name": "prune_global_l1", "amount": 0.5, "include_head": True}, None, CTX)
    assert (with_head.module.classifier[4].weight == 0).any()


def test_prune_2of4_every_group_has_two_zeros(cnn_bundle):
    out = compress(cnn_bundle, {"name": "prune_2of4"}, None, CTX)
    w = out.module.classifier[1].weight.detach()
    assert ((w.reshape(w.shape[0], -1, 4) == 0).sum(-1) >= 2).all()
    assert abs(out.info["sparsity"] - 0.5) < 0.01  # only the 1-channel 3x3 stem (9 inputs) is left dense
    conv = out.module.features[3].weight.detach()  # conv kernels are flattened per output channel
    assert ((conv.reshape(conv.shape[0], -1, 4) == 0).sum(-1) >= 2).all()
    assert nm_mask(torch.tensor([[1.0, -4.0, 3.0, 2.0, 0.1, 0.2, 0.3, 0.4]]), 1, 4).sum() == 2


def test_prune_then_int8_keeps_zeros(cnn_bundle, images):
    out = compress(cnn_bundle, _load_yaml("prune_int8"), images, CTX)
    assert out.info["scheme"] == "prune_global_l1+int8" and out.info["bits"] == 8
    assert abs(out.info["sparsity"] - 0.5) <= 0.01  # re-measured on the dequantized int8 weights
    assert torch.qint8 in {v.dtype for v in out.module.state_dict().values() if isinstance(v, torch.Tensor)}
    chain = compress(cnn_bundle, {"name": "chain", "steps": [{"name": "prune_2of4"}, {"name": "int8_dynamic"}]},
                     None, CTX)
    assert chain.info["scheme"] == "prune_2of4+int8_dynamic"
    assert abs(chain.info["sparsity"] - 0.5) < 0.01


def test_global_pruning_of_channels_last_weights():
    """The pretrained image models keep conv weights channels-last; torch's global pruning needs them flat."""
    torch.manual_seed(0)
    net = torch.nn.Sequential(torch.nn.Conv2d(3, 8, 3), torch.nn.ReLU(), torch.nn.Flatten(), torch.nn.LazyLinear(4))
    net(torch.zeros(1, 3, 8, 8))
    net = net.to(memory_format=torch.channels_last).eval()
    b = ModelBundle(net, "cl", "cl", "image", 4, head="3")
    out = compress(b, {"name": "prune_global_l1", "amount": 0.5}, None, CTX)
    w = out.module[0].weight
    assert w.is_contiguous(memory_format=torch.channels_last)
    assert out.info["sparsity"] == pytest.approx(0.5, abs=0.01) and out.info["pruned_layers"] == ["0"]
    x = torch.rand(2, 3, 8, 8)
    assert torch.allclose(out.logits(x), out.module(x))
