"""Cache keys of compressed models change with every config field, the calibration data and the baseline; warm runs
of calibrated schemes load the cached state instead of calibrating; bad configs fail with one line."""
from __future__ import annotations

import dataclasses

import pytest
import torch

from uqcompress.compress import SCHEMES, CompressContext, compress, scheme_fingerprint

from test_compress_schemes import ALL, _load_yaml

CTX = CompressContext(progress=False, batch_size=16)


def _variants(value):
    if isinstance(value, bool):
        return [not value]
    if isinstance(value, int):
        return [value + 1] if value < 8 else [value // 2]
    if isinstance(value, float):
        return [value / 2]
    if value is None:
        return [16]
    if isinstance(value, str):
        return [{"x86": "fbgemm", "per_channel": "per_tensor", "asymmetric": "symmetric", "all": "ffn"}.get(value,
                                                                                                          value + "x")]
    if isinstance(value, list):
        return [value[:1]]
    if isinstance(value, dict):
        return [{**value, k: _variants(v)[0]} for k, v in value.items()]
    raise AssertionError(value)


@pytest.mark.parametrize("name", ALL)
def test_fingerprint_changes_with_every_field(name, cnn_bundle, images):
    """Changing any one YAML field of any scheme (or the calibration data, or the baseline) changes the key."""
    cfg = _load_yaml(name)
    key = scheme_fingerprint(cnn_bundle, cfg, images)
    assert key == scheme_fingerprint(cnn_bundle, dict(cfg), images.clone())  # deterministic
    for field, value in cfg.items():
        if field == "name":
            continue
        for v in _variants(value):
            assert scheme_fingerprint(cnn_bundle, {**cfg, field: v}, images) != key, (name, field, v)
    assert scheme_fingerprint(cnn_bundle, cfg, images[:-1]) != key
    other = images.clone()
    other[0, 0, 0, 0] += 0.5
    assert scheme_fingerprint(cnn_bundle, cfg, other) != key
    assert scheme_fingerprint(dataclasses.replace(cnn_bundle, fingerprint="other-weights"), cfg, images) != key


def test_compressed_bundle_key_follows_config(cnn_bundle, images):
    """The key the scheme puts on its bundle (used by the logits cache) moves with the config and calib data."""
    a = compress(cnn_bundle, {"name": "prune_global_l1", "amount": 0.5}, images, CTX).fingerprint
    assert a == compress(cnn_bundle, {"name": "prune_global_l1", "amount": 0.5}, images, CTX).fingerprint
    assert a != compress(cnn_bundle, {"name": "prune_global_l1", "amount": 0.4}, images, CTX).fingerprint
    assert a != compress(cnn_bundle, {"name": "prune_global_l1", "amount": 0.5, "target": "all",
                                      "include_head": True}, images, CTX).fingerprint
    s1 = compress(cnn_bundle, {"name": "int8", "calibration_samples": 16}, images, CTX).fingerprint
    assert s1 != compress(cnn_bundle, {"name": "int8", "calibration_samples": 16}, images.flip(0), CTX).fingerprint
    assert s1 != compress(cnn_bundle, {"name": "int8", "calibration_samples": 17}, images, CTX).fingerprint
    c1 = compress(cnn_bundle, {"name": "chain", "steps": [{"name": "prune_2of4"}, {"name": "int8_dynamic"}]},
                  None, CTX).fingerprint
    c2 = compress(cnn_bundle, {"name": "chain", "steps": [{"name": "prune_2of4", "n": 1}, {"name": "int8_dynamic"}]},
                  None, CTX).fingerprint
    assert c1 != c2


@pytest.mark.parametrize("cfg", [{"name": "int8", "calibration_samples": 32},
                                 {"name": "brevitas_w4a4", "calibration_samples": 32}])
def test_warm_run_loads_calibrated_state_without_calibrating(cfg, cnn_bundle, images, monkeypatch, tmp_cache):
    cold = compress(cnn_bundle, cfg, images, CTX)
    assert cold.info["compressed_from_cache"] is False
    assert list((tmp_cache / "compressed" / cfg["name"]).glob("*.pt"))

    def no_calibration(*a, **k):
        raise AssertionError("a warm run must not calibrate")

    monkeypatch.setattr("uqcompress.runner.Runner.calibrate", no_calibration)
    with monkeypatch.context() as m:  # nor re-try FX on a model it already took
        m.setattr("uqcompress.compress.int8_static._fx_works",
                  lambda *a: pytest.fail("a warm int8 run must not trace the model again to pick its mode"))
        warm = compress(cnn_bundle, cfg, images, CTX)
    assert warm.info["compressed_from_cache"] is True and warm.fingerprint == cold.fingerprint
    x = images[:8]
    assert torch.equal(warm.logits(x), cold.logits(x))
    # the loaded state is what makes it right: the same structure left uncalibrated computes something else
    for f in [*(tmp_cache / "compressed" / cfg["name"]).glob("*.pt"), *(tmp_cache / "int8_observers").glob("*.pt")]:
        f.unlink()  # the calibrated state and (int8) the observer statistics its quant.skip variants share
    monkeypatch.setattr("uqcompress.runner.Runner.calibrate", lambda *a, **k: 0)
    uncalibrated = compress(cnn_bundle, cfg, images, CTX)
    assert not torch.equal(uncalibrated.logits(x), cold.logits(x))


def test_corrupt_cache_entry_is_recomputed(cnn_bundle, images, tmp_cache):
    cfg = {"name": "int8", "calibration_samples": 32}
    cold = compress(cnn_bundle, cfg, images, CTX)
    (entry,) = (tmp_cache / "compressed" / "int8").glob("*.pt")
    entry.write_bytes(b"not a checkpoint")
    again = compress(cnn_bundle, cfg, images, CTX)
    assert again.info["compressed_from_cache"] is False
    assert torch.equal(again.logits(images[:4]), cold.logits(images[:4]))


@pytest.mark.parametrize("cfg,needle", [
    ({"name": "prune_global_l1", "amount": 1.5}, "quant.amount=1.5"),
    ({"name": "prune_global_l1", "amout": 0.5}, "unknown option"),
    ({"name": "prune_global_l1", "target": "heads"}, "quant.target='heads' is not one of: all, attention, ffn"),
    ({"name": "prune_global_l1", "target": "attention"}, "model 'small_cnn' has no"),
    ({"name": "prune_2of4", "n": 4, "m": 4}, "0 < n < m"),
    ({"name": "brevitas_w4a4", "weight_bits": 1}, "quant.weight_bits=1"),
    ({"name": "int4_weight_only", "group_size": 7}, "smaller quant.group_size"),
    ({"name": "int8", "backend": "arm"}, "quant.backend='arm' is not one of"),
    ({"name": "chain", "steps": [{"name": "int8_dynamic"}, {"name": "prune_2of4"}]}, "put pruning steps first"),
    ({"name": "chain", "steps": [{"name": "int9"}]}, "unknown quant 'int9'; choose one of"),
    ({"name": "chain", "steps": []}, "needs quant.steps"),
])
def test_bad_config_fails_with_one_line(cfg, needle, cnn_bundle, images):
    with pytest.raises((ValueError, KeyError)) as e:
        compress(cnn_bundle, cfg, images, CTX)
    msg = str(e.value)
    assert needle in msg and "\n" not in msg, msg


def test_unknown_scheme_lists_choices(cnn_bundle):
    with pytest.raises(KeyError) as e:
        compress(cnn_bundle, {"name": "int3"}, None, CTX)
    assert all(n in str(e.value) for n in SCHEMES.names())
