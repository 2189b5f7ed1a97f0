"""One calibration pass serves every quant.skip variant of static int8: the variant built from the shared observer
statistics is the variant calibrated on its own, bit for bit, in both modes; and no second pass runs."""
from __future__ import annotations

import warnings

import pytest
import torch

from uqcompress.cache import read_events
from uqcompress.compress import CompressContext, compress
from uqcompress.compress._observers import load_observer_states, observer_states
from uqcompress.compress.int8_static import int8_layers, prepared_int8

CTX = CompressContext(progress=False, batch_size=16)


# ``block``: the MBConv-like test model, a fixture of tests/conftest.py


X = torch.rand(64, 3, 8, 8, generator=torch.Generator().manual_seed(2))
SKIPS = [["stem"], ["dw"], ["pw"], ["head"], ["stem", "pw"], ["dw", "pw", "head"]]


@pytest.mark.parametrize("mode", ["fx", "per_layer"])
def test_transplanted_statistics_equal_a_calibration_of_the_variant(block, mode):
    """Observers watch float activations whatever is skipped (FX fuses regardless of qconfig), so the statistics
    of the fully quantized model, copied into a quant.skip variant, give the same converted model."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        full, _ = prepared_int8(block.module, "x86", (X[:2],), mode)
        full(X)
        states = observer_states(full)
        for skip in SKIPS:
            own, finish = prepared_int8(block.module, "x86", (X[:2],), mode, skip)
            own(X)
            expected = finish(own)(X)
            shared, finish = prepared_int8(block.module, "x86", (X[:2],), mode, skip)
            assert load_observer_states(shared, states) == []
            assert torch.equal(finish(shared)(X), expected), skip


def test_missing_observer_is_reported_and_nothing_copied(block):
    """A variant with an observer the recorded model has not (here: nothing recorded) asks for a calibration."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        variant, _ = prepared_int8(block.module, "x86", (X[:2],), "fx", ["dw"])
    before = observer_states(variant)
    missing = load_observer_states(variant, {})
    assert missing and all(":" in k for k in missing)  # keyed by observed node and observer class
    after = observer_states(variant)
    assert all(torch.equal(before[k][n], after[k][n]) for k in before for n in before[k])


@pytest.mark.parametrize("mode", ["fx", "per_layer"])
def test_skip_variants_run_no_calibration_pass(block, mode):
    """compress() of quant.skip variants after the first: no calibration pass in events.jsonl, and the same model
    as the variant calibrated on its own the way compress() calibrates (the runner's batches: a histogram observer
    depends on how the data is batched)."""
    cfg = {"name": "int8", "mode": mode}
    compress(block, cfg, X, CTX)
    passes = len(read_events("calibration"))
    assert passes == 1
    variants = {tuple(s): compress(block, {**cfg, "skip": s}, X, CTX) for s in SKIPS[:3]}
    assert len(read_events("calibration")) == passes  # every variant from the shared statistics
    kind = "compressed/int8" if mode == "fx" else "compressed/int8_per_layer"
    assert len(read_events(kind, "compute")) == 1 + len(variants)  # each converted state stored once
    for skip, b in variants.items():
        assert b.info["fp32_layers"] == list(skip)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            own, finish = prepared_int8(block.module, "x86", (X[:2],), mode, list(skip))
            CTX.runner.calibrate(block, own, X, batch_size=CTX.batch_size)
            assert torch.equal(b.module(X), finish(own)(X))


def test_int8_layers_lists_what_skip_matches(block):
    assert int8_layers(block.module) == ["stem", "dw", "pw", "head"]
