"""Fixtures for compression tests: a private cache, a small CNN bundle, a tiny HF BERT text bundle."""
from __future__ import annotations

import warnings

import pytest
import torch

from uqcompress.models.base import ModelBundle


@pytest.fixture(autouse=True)
def tmp_cache(tmp_cache):
    """Every compression test gets the private cache of tests/conftest.py, asked for or not."""
    return tmp_cache


@pytest.fixture
def cnn_bundle() -> ModelBundle:
    """A small (random-init, BN stats perturbed) SmallCNN on 1x16x16 inputs, 10 classes."""
    from uqcompress.models.small_cnn import SmallCNN

    torch.manual_seed(0)
    m = SmallCNN(in_channels=1, num_classes=10, width=8, hidden=32).eval()
    with torch.no_grad():
        for mod in m.modules():
            if isinstance(mod, torch.nn.BatchNorm2d):
                mod.running_mean.uniform_(-0.1, 0.1)
                mod.running_var.uniform_(0.5, 1.5)
    return ModelBundle(m, "small_cnn", "cnn-test", "image", 10, head="classifier.4")


@pytest.fixture
def images() -> torch.Tensor:
    return torch.rand(48, 1, 16, 16, generator=torch.Generator().manual_seed(1))


def toy_tokenize(texts: list[str], length: int = 12) -> dict[str, torch.Tensor]:
    """Characters -> ids in [1, 100), padded with 0; a stand-in tokenizer for the tiny BERT."""
    ids = torch.zeros(len(texts), length, dtype=torch.long)
    mask = torch.zeros(len(texts), length, dtype=torch.long)
    for i, t in enumerate(texts):
        codes = [1 + ord(c) % 99 for c in t[:length]]
        ids[i, : len(codes)] = torch.tensor(codes)
        mask[i, : len(codes)] = 1
    return {"input_ids": ids, "attention_mask": mask}


@pytest.fixture
def bert_bundle() -> ModelBundle:
    """BertForSequenceClassification(hidden 32, 2 layers, 2 heads, FFN 64, vocab 100), 3 classes, random init."""
    from uqcompress._compat import ensure_torchvision

    ensure_torchvision()  # transformers imports torchvision; this machine's wheel needs the shim
    from transformers import BertConfig, BertForSequenceClassification

    torch.manual_seed(0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        cfg = BertConfig(hidden_size=32, num_hidden_layers=2, num_attention_heads=2, intermediate_size=64,
                         vocab_size=100, num_labels=3, max_position_embeddings=32)
        m = BertForSequenceClassification(cfg).eval()
    return ModelBundle(m, "tiny_bert", "bert-test", "text", 3, prepare=toy_tokenize, head="classifier")


@pytest.fixture
def texts() -> list[str]:
    words = ["good", "bad", "film", "plot", "great", "boring", "actor", "scene"]
    return [" ".join(words[(i * k) % 8] for k in range(1, 4 + i % 3)) for i in range(24)]
