"""``model=hf_classifier`` on tiny random BERT checkpoints that the test saves (no hub, no network)."""
from __future__ import annotations

import collections
import json
import re

import pytest
import torch

from uqcompress.cache import set_cache_dir
from uqcompress.data import load_dataset
from uqcompress.models import BuildContext, build_model
from uqcompress.models.text import import_transformers

CTX = BuildContext(seed=0, device="cpu", progress=False)


@pytest.fixture(autouse=True)
def tmp_cache(tmp_path_factory, monkeypatch):
    path = tmp_path_factory.mktemp("cache")
    monkeypatch.setenv("UQCOMPRESS_CACHE", str(path))
    set_cache_dir(None)
    return path


@pytest.fixture(scope="module")
def trec():
    return load_dataset({"name": "trec", "max_samples": 400}, seed=0)


def save_tiny_bert(folder, texts, num_labels, pooler=True, head=True):
    """A random BERT (hidden 32, 2 layers) + a WordPiece vocabulary of the texts' words, saved like a hub model."""
    tf = import_transformers()
    words = collections.Counter(w for t in texts for w in re.findall(r"\w+|[^\w\s]", t.lower()))
    vocab = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"] + [w for w, _ in words.most_common(995)]
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "vocab.txt").write_text("\n".join(vocab) + "\n")
    (folder / "tokenizer_config.json").write_text(json.dumps(
        {"tokenizer_class": "BertTokenizer", "do_lower_case": True, "model_max_length": 64}))
    cfg = tf.BertConfig(hidden_size=32, num_hidden_layers=2, num_attention_heads=2, intermediate_size=64,
                        vocab_size=len(vocab), max_position_embeddings=64, num_labels=num_labels)
    torch.manual_seed(1)
    if head:
        model = tf.BertForSequenceClassification(cfg)
    else:
        model = tf.BertModel(cfg, add_pooling_layer=pooler)
    model.save_pretrained(folder)
    return folder


def test_head_adapted_to_class_count_trained_and_cached(tmp_path, trec, monkeypatch):
    ckpt = save_tiny_bert(tmp_path / "bert2", trec["fit"].x, num_labels=2)
    cfg = {"name": "hf_classifier", "checkpoint": str(ckpt), "epochs": 40}
    m = build_model(cfg, trec, CTX)
    assert m.head == "classifier" and m.num_classes == 6 and m.info["trained_head"]
    assert m.info["checkpoint_labels"] == 2
    logits = m.logits(trec["test"].x[:7])
    assert logits.shape == (7, 6) and torch.isfinite(logits).all()
    fit_acc = float((m.logits(trec["fit"].x).argmax(1) == trec["fit"].y).float().mean())
    majority = float(torch.bincount(trec["fit"].y).max()) / len(trec["fit"])
    assert fit_acc > majority, (fit_acc, majority)
    # tokenizer respects max_length (truncation) and pads to the batch's longest text
    inputs = m.prepare(["what " * 200, "who"])
    assert inputs["input_ids"].shape == (2, 64) and inputs["attention_mask"][1].sum() == 3

    import uqcompress.models.hf_classifier as hf

    monkeypatch.setattr(hf, "fit_head", lambda *a, **k: pytest.fail("cached head was retrained"))
    again = build_model(cfg, trec, CTX)
    assert again.fingerprint == m.fingerprint
    assert torch.equal(again.module.classifier.weight, m.module.classifier.weight)


def test_matching_checkpoint_is_used_as_is(tmp_path, trec):
    tf = import_transformers()
    ckpt = save_tiny_bert(tmp_path / "bert6", trec["fit"].x, num_labels=6)
    m = build_model({"name": "hf_classifier", "checkpoint": str(ckpt)}, trec, CTX)
    assert not m.info["trained_head"]
    ref = tf.AutoModelForSequenceClassification.from_pretrained(ckpt).eval()
    texts = trec["test"].x[:5]
    tok = tf.AutoTokenizer.from_pretrained(ckpt)
    with torch.no_grad():
        expected = ref(**tok(texts, padding=True, return_tensors="pt")).logits
    torch.testing.assert_close(m.logits(texts), expected)


def test_new_layers_before_the_head_train_end_to_end(tmp_path, trec):
    # a bare encoder without pooler: the classifier *and* the pooler are new, so both are trained, body frozen
    ckpt = save_tiny_bert(tmp_path / "bare", trec["fit"].x, num_labels=2, pooler=False, head=False)
    tf = import_transformers()
    before = tf.AutoModel.from_pretrained(ckpt, add_pooling_layer=True).state_dict()
    m = build_model({"name": "hf_classifier", "checkpoint": str(ckpt), "e2e_epochs": 1}, trec, CTX)
    assert m.info["trained_head"] and m.head == "classifier"
    after = m.module.bert.state_dict()
    changed = {k for k, v in before.items() if not torch.equal(after[k], v)}
    assert changed and all(k.startswith("pooler.") for k in changed), changed  # only the new pooler moved
    assert m.logits(trec["test"].x[:3]).shape == (3, 6)


def test_refusals_are_one_line(tmp_path, trec, monkeypatch):
    ckpt = save_tiny_bert(tmp_path / "bert2", trec["fit"].x, num_labels=2)
    with pytest.raises(ValueError, match="train_head=false"):
        build_model({"name": "hf_classifier", "checkpoint": str(ckpt), "train_head": False}, trec, CTX)
    with pytest.raises(ValueError, match="model.checkpoint=NAME_OR_FOLDER"):
        build_model({"name": "hf_classifier"}, trec, CTX)
    with pytest.raises(FileNotFoundError, match="not a folder"):
        build_model({"name": "hf_classifier", "checkpoint": str(tmp_path / "nope")}, trec, CTX)
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(FileNotFoundError) as e:
        build_model({"name": "hf_classifier", "checkpoint": "uqcompress-test/no-such-model"}, trec, CTX)
    msg = str(e.value)
    assert "\n" not in msg and "model=minilm" in msg and "model.checkpoint=/path/to/folder" in msg


def test_trust_remote_code_is_off_unless_asked(tmp_path, trec, monkeypatch):
    ckpt = save_tiny_bert(tmp_path / "bert6", trec["fit"].x, num_labels=6)
    import uqcompress.models.hf_classifier as hf

    seen = []
    real = hf.load_pretrained
    monkeypatch.setattr(hf, "load_pretrained", lambda loader, c, **kw: seen.append(kw["trust_remote_code"])
                        or real(loader, c, **kw))
    build_model({"name": "hf_classifier", "checkpoint": str(ckpt)}, trec, CTX)
    assert seen and not any(seen)
    seen.clear()
    build_model({"name": "hf_classifier", "checkpoint": str(ckpt), "trust_remote_code": True}, trec, CTX)
    assert seen and all(seen)


def test_text_model_refuses_image_data(monkeypatch):
    import uqcompress.models.hf_classifier as hf

    monkeypatch.setattr(hf, "import_transformers", lambda: pytest.fail("work started before the modality check"))
    mnist = load_dataset({"name": "mnist"}, seed=0)
    with pytest.raises(ValueError, match="model 'hf_classifier' takes text inputs but data set 'mnist' is image"):
        build_model({"name": "hf_classifier", "checkpoint": "x"}, mnist, CTX)
