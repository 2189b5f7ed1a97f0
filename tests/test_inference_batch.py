"""Inference batch size resolution and the CLI's malloc settings."""
import sys

import pytest

from uqcompress._malloc import keep_freed_memory
from uqcompress.pipeline import inference_batch_size


@pytest.mark.parametrize("cfg,device,expected", [
    ({"batch_size": None, "model": {"inference_batch_size": 4}}, "cpu", 4),     # the model's CPU preference
    ({"batch_size": None, "model": {"inference_batch_size": 4}}, "cuda", 256),  # GPUs want large batches
    ({"batch_size": 32, "model": {"inference_batch_size": 4}}, "cpu", 32),      # the user's choice wins
    ({"batch_size": None, "model": {"name": "small_cnn"}}, "cpu", 256),         # no preference
])
def test_inference_batch_size(cfg, device, expected):
    assert inference_batch_size(cfg, device) == expected


def test_yaml_models_that_prefer_small_cpu_batches():
    from pathlib import Path

    from omegaconf import OmegaConf

    import uqcompress

    conf = Path(uqcompress.__file__).parent / "conf" / "model"
    prefs = {m: OmegaConf.load(conf / f"{m}.yaml").get("inference_batch_size")
             for m in ("efficientnet_lite0", "resnet18", "resnet50", "timm", "small_cnn")}
    assert prefs == {"efficientnet_lite0": 4, "resnet18": 4, "resnet50": 4, "timm": 4, "small_cnn": None}


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc mallopt")
def test_keep_freed_memory_takes_effect_once():
    assert keep_freed_memory() is True
    assert keep_freed_memory() is True  # idempotent
