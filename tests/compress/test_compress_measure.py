"""Measured cost helpers used for compressed models (uqcompress/measure.py), and the pipeline reporting them."""
from __future__ import annotations

import pytest
import torch
from torch import nn

from uqcompress.compress import CompressContext, compress
from uqcompress.measure import dense_weight, weight_bits, weight_sparsity
from uqcompress.models.base import ModelBundle


def test_weight_sparsity_counts_weight_matrices_only():
    net = nn.Sequential(nn.Embedding(10, 4), nn.Linear(4, 4), nn.LayerNorm(4), nn.Linear(4, 2))
    with torch.no_grad():
        net[0].weight.zero_()       # embeddings are not counted
        net[1].weight[:2].zero_()   # 8 of 16
        net[2].weight.zero_()       # 1-D norm scales are not counted
        net[3].weight.fill_(1.0)    # 0 of 8
    assert weight_sparsity(net) == pytest.approx(8 / 24)
    assert weight_sparsity(net, ["1"]) == 0.5
    assert weight_bits(net) == 32 and weight_bits(net.half()) == 16


def test_dense_weight_reads_quantized_storage():
    torch.manual_seed(0)
    net = nn.Sequential(nn.Linear(16, 8), nn.ReLU(), nn.Linear(8, 2))
    b = ModelBundle(net, "mlp", "m", "image", 2)
    q = compress(b, {"name": "int8_dynamic"}, None, CompressContext(progress=False))
    w = dense_weight(q.module[0])
    assert w.dtype == torch.float32 and w.shape == (8, 16)
    assert (w - net[0].weight).abs().max() < 0.02 and not torch.equal(w, net[0].weight)




@pytest.mark.slow
def test_pipeline_reports_bits_and_sparsity_for_both_models(tmp_cache):
    from uqcompress.pipeline import run_config

    res = run_config({"data": {"name": "mnist"}, "limit": 120, "fit_limit": 120,
                      "model": {"name": "small_cnn", "epochs": 1}, "quant": {"name": "prune_global_l1", "amount": 0.5},
                      "ood": {"name": "none"}, "progress": False,
                      "latency": {"batch_size": 8, "repeats": 2, "warmup": 1}})
    m = res.metrics
    assert m["baseline.bits"] == 32 and m["baseline.sparsity"] < 0.01
    assert m["compressed.bits"] == 32 and abs(m["compressed.sparsity"] - 0.5) <= 0.01
    assert m["compressed.sparsity_target"] == "all" and m["compressed.scheme"] == "prune_global_l1"
    assert m["compressed.model_size_bytes"] == m["baseline.model_size_bytes"]  # zeros stored dense
