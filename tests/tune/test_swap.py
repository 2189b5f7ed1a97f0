"""Layer swaps between a float model and its int8 copy, against the real quant.skip variants they stand for, and the
sensitivity ranking built on them."""
from __future__ import annotations

import warnings

import pytest
import torch

from uqcompress import metrics as M
from uqcompress.compress import CompressContext, compress
from uqcompress.data.base import Split
from uqcompress.runner import Runner
from uqcompress.tune.sensitivity import rank_layers
from uqcompress.tune.swap import LayerSwap

CTX = CompressContext(progress=False, batch_size=16)
LAYERS = ["stem", "dw", "pw", "head"]
X = torch.rand(64, 3, 8, 8, generator=torch.Generator().manual_seed(2))


@pytest.fixture(autouse=True)
def _cache(tmp_cache):
    return tmp_cache


@pytest.fixture(autouse=True)
def _quiet():
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        yield


# ``block``: the MBConv-like test model, a fixture of tests/conftest.py


def _out(z: torch.Tensor) -> torch.Tensor:
    return z.dequantize() if z.is_quantized else z


@pytest.mark.parametrize("skip", [["stem"], ["head"], ["dw", "pw", "head"]])
def test_per_layer_swap_is_the_quant_skip_variant(block, skip):
    q = compress(block, {"name": "int8", "mode": "per_layer"}, X, CTX)
    swap = LayerSwap.build(block, q, LAYERS, X[:2])
    assert swap.mode == "per_layer" and swap.layers == LAYERS and not swap.not_ranked
    real = compress(block, {"name": "int8", "mode": "per_layer", "skip": skip}, X, CTX)
    with swap.float_layers(skip) as m:
        assert torch.equal(m(X), real.module(X))
    only = [n for n in LAYERS if n != skip[0]]
    real_alone = compress(block, {"name": "int8", "mode": "per_layer", "skip": only}, X, CTX)
    with swap.int8_layer(skip[0]) as m:
        assert torch.equal(m(X), real_alone.module(X))
    assert torch.equal(q.module(X), swap.int8_model(X))  # put back


def test_fx_swaps_match_where_the_edges_are_int8(block):
    """FX: the head (output only dequantized) and a layer between two int8 layers (pw) revert exactly to the
    quant.skip variant; the stem (input from the graph input) and dw (output into ReLU6 + add) keep the full model's
    int8 edge rounding, so there the swap is a different model (the ranking's definition; the walk builds the real
    variants)."""
    q = compress(block, {"name": "int8", "mode": "fx"}, X, CTX)
    swap = LayerSwap.build(block, q, LAYERS, X[:2])
    assert swap.mode == "fx" and swap.layers == LAYERS
    full = _out(q.module(X))
    for skip in (["head"], ["pw"], ["stem"], ["dw"]):
        real = compress(block, {"name": "int8", "mode": "fx", "skip": skip}, X, CTX).module(X)
        with swap.float_layers(skip) as m:
            z = _out(m(X))
        assert not torch.equal(z, full), skip  # the swap changed the model
        assert torch.equal(z, real) == (skip in (["head"], ["pw"])), skip
    zf = block.module(X)
    for name in LAYERS:  # alone: only this layer int8 (the float model around it)
        with swap.int8_layer(name) as m:
            z = m(X)
        assert not torch.equal(z, zf) and (z - zf).abs().max() < 0.5
    assert torch.equal(full, _out(swap.int8_model(X)))  # put back


def test_rank_layers_measures_each_swap_against_the_baseline(block, tmp_cache):
    """Every score is the KL / flips of that swapped model vs the baseline on the subset; cached as one entry."""
    q = compress(block, {"name": "int8", "mode": "per_layer"}, X, CTX)
    swap = LayerSwap.build(block, q, LAYERS, X[:2])
    y = block.module(X).argmax(-1).roll(1)  # labels the baseline partly misses
    subset = Split(X, y)
    runner = Runner("cpu", 16, progress=False)
    zb = runner.logits(block, X)
    calls = []

    def logits(b, what):
        calls.append(what)
        return runner.outputs(b, "ranking", subset).logits

    s = rank_layers(swap, q, subset, zb, logits)
    assert s.layers == LAYERS and s.samples == 64
    for name in LAYERS:
        with swap.float_layers([name]) as m:
            assert s.revert[name]["kl"] == pytest.approx(M.kl_from_logits(zb, m(X)))
        with swap.int8_layer(name) as m:
            zc = m(X)
            assert s.alone[name]["kl"] == pytest.approx(M.kl_from_logits(zb, zc))
            assert s.alone[name]["flips"] == pytest.approx(M.flips(zb.softmax(-1), zc.softmax(-1), y)["flips"])
    assert s.full["kl"] == pytest.approx(M.kl_from_logits(zb, q.module(X)))
    assert sorted(s.order("revert")) == sorted(LAYERS)
    n = len(calls)
    assert n == 1 + 2 * len(LAYERS)
    again = rank_layers(swap, q, subset, zb, logits)  # cached: no model runs
    assert len(calls) == n and again.order("alone") == s.order("alone")
