"""Shared by the bring-your-own tests: a tiny Hugging Face BERT classifier folder and a toy sentiment corpus."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

POS = ["good", "great", "fine", "lovely", "superb"]
NEG = ["bad", "awful", "poor", "boring", "dreadful"]
FILLER = ["the", "movie", "film", "was", "a", "plot", "really", "quite"]
OTHER = ["weather", "paris", "train", "tuesday", "invoice", "printer", "seven", "kettle"]
VOCAB = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", *POS, *NEG, *FILLER, *OTHER]


@pytest.fixture(scope="module")
def one_thread():
    """Tiny models on a shared CPU run several times faster without intra-op thread contention.

    Use with ``pytestmark = pytest.mark.usefixtures("one_thread")`` after importing it into the test module."""
    old = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(old)


def sentences(n: int, seed: int) -> tuple[list[str], list[str]]:
    """``n`` short reviews with string labels ``pos`` / ``neg`` (the sentiment word decides the label)."""
    rng = np.random.default_rng(seed)
    texts, labels = [], []
    for i in range(n):
        lab = "pos" if i % 2 else "neg"
        words = list(rng.choice(FILLER, 4)) + [rng.choice(POS if lab == "pos" else NEG)]
        rng.shuffle(words)
        texts.append(" ".join(words))
        labels.append(lab)
    return texts, labels


def off_topic(n: int, seed: int) -> list[str]:
    rng = np.random.default_rng(seed)
    return [" ".join(rng.choice(OTHER, 5)) for _ in range(n)]


def tiny_bert_folder(root: Path, train: bool = True, id2label: dict[int, str] | None = None) -> Path:
    """Save a 2-layer, 32-wide BERT sequence classifier + fast tokenizer into ``root`` (trained on toy reviews,
    labels neg=0 / pos=1, unless ``train`` is False)."""
    from uqcompress._compat import ensure_torchvision

    ensure_torchvision()  # transformers imports torchvision
    from transformers import BertConfig, BertForSequenceClassification, BertTokenizerFast

    from uqcompress.models.text import TextPrepare
    from uqcompress.models.train import fit_classifier

    root.mkdir(parents=True, exist_ok=True)
    (root / "vocab.txt").write_text("\n".join(VOCAB) + "\n")
    tok = BertTokenizerFast(vocab={w: i for i, w in enumerate(VOCAB)})  # transformers 5
    if len(tok.get_vocab()) != len(VOCAB):  # transformers 4 reads the vocab file
        tok = BertTokenizerFast(vocab_file=str(root / "vocab.txt"))
    assert len(tok.get_vocab()) == len(VOCAB)
    torch.manual_seed(0)
    id2label = id2label or {0: "neg", 1: "pos"}
    cfg = BertConfig(vocab_size=len(VOCAB), hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
                     intermediate_size=64, max_position_embeddings=64, num_labels=len(id2label),
                     id2label=id2label, label2id={v: k for k, v in id2label.items()})
    model = BertForSequenceClassification(cfg)
    if train:
        texts, labels = sentences(256, seed=123)
        label2id = {v: k for k, v in id2label.items()}
        y = torch.tensor([label2id[lab] for lab in labels])
        fit_classifier(model, texts, y, epochs=6, lr=3e-3, batch_size=32, seed=0, prepare=TextPrepare(tok, 32, keys=tok.model_input_names),
                       progress=False)
    model.eval().save_pretrained(root)
    tok.save_pretrained(root)
    return root
