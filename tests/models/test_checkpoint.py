"""model=checkpoint: a user's state_dict for small_cnn / torchvision / timm, or a Hugging Face folder, loaded safely
and checked (keys, shapes, class count), with normalisation / channel adaptation in an FX-traceable wrapper."""
import pytest
import torch
from torch import nn

from byo_helpers import one_thread, sentences, tiny_bert_folder  # noqa: F401  (one_thread: fixture)
from uqcompress._compat import ensure_torchvision
from uqcompress.compress import compress
from uqcompress.data.base import DataBundle, Split
from uqcompress.models import build_model
from uqcompress.models.base import ModelBundle
from uqcompress.models.small_cnn import SmallCNN

pytestmark = pytest.mark.usefixtures("one_thread")


def images(k: int, c: int = 3, h: int = 20, w: int = 24, n: int = 16) -> DataBundle:
    g = torch.Generator().manual_seed(0)
    x = torch.rand(n, c, h, w, generator=g)
    y = torch.arange(n) % k
    return DataBundle("toy", "image", k, {"calibration": Split(x, y), "test": Split(x, y)})


def small(k=5, c=3) -> nn.Module:
    torch.manual_seed(1)
    m = SmallCNN(in_channels=c, num_classes=k, width=8, hidden=16).eval()
    for mod in m.modules():  # non-trivial BatchNorm statistics, so a skipped buffer would show in the logits
        if isinstance(mod, nn.BatchNorm2d):
            mod.running_mean.uniform_(-0.2, 0.2)
            mod.running_var.uniform_(0.5, 2.0)
    return m


def build(path, data, **cfg) -> ModelBundle:
    return build_model({"name": "checkpoint", "path": str(path), **cfg}, data)


def test_small_cnn_state_dict_in_every_wrapping(tmp_path):
    ref = small()
    data = images(5)
    x = data["test"].x
    want = ref(x)
    sd = ref.state_dict()
    forms = {
        "plain.pt": sd,
        "lightning.ckpt": {"state_dict": {f"model.{k}": v for k, v in sd.items()}, "epoch": 3},
        "ddp.pth": {"model": {f"module.{k}": v for k, v in sd.items()}},
        "old.pt": {k: v for k, v in sd.items() if not k.endswith("num_batches_tracked")},
    }
    for name, obj in forms.items():
        torch.save(obj, tmp_path / name)
        b = build(tmp_path / name, data, arch="small_cnn")
        assert b.num_classes == 5 and b.modality == "image" and b.info["arch"] == "small_cnn"
        assert torch.allclose(b.logits(x), want, atol=1e-6), name
        assert isinstance(b.module.get_submodule(b.head), nn.Linear)
    from safetensors.torch import save_file

    save_file(sd, str(tmp_path / "w.safetensors"))
    assert torch.allclose(build(tmp_path / "w.safetensors", data, arch="small_cnn").logits(x), want, atol=1e-6)
    # same file, same key; other weights, other key (the logits cache must not mix them up)
    k1 = build(tmp_path / "plain.pt", data, arch="small_cnn").fingerprint
    torch.save(small(k=5).state_dict() | {"classifier.4.bias": torch.ones(5)}, tmp_path / "other.pt")
    assert k1 == build(tmp_path / "plain.pt", data, arch="small_cnn").fingerprint
    assert k1 != build(tmp_path / "other.pt", data, arch="small_cnn").fingerprint


def test_class_count_and_key_mismatches_are_one_line(tmp_path):
    torch.save(small(k=5).state_dict(), tmp_path / "k5.pt")

    def err(data, exc=ValueError, **cfg):
        with pytest.raises(exc) as e:
            build(tmp_path / "k5.pt", data, **cfg)
        assert "\n" not in str(e.value)
        return str(e.value)

    msg = err(images(10), arch="small_cnn")
    assert "has a 5-class head ('classifier.4.weight') but data set 'toy' has 10 classes" in msg
    assert "outside the checkpoint's classes" in msg
    assert "model.num_classes is 7 classes" in err(images(3), arch="small_cnn", num_classes=7)
    assert "set model.num_classes=5" in err(images(3), arch="small_cnn")
    b = build(tmp_path / "k5.pt", images(3), arch="small_cnn", num_classes=5)  # data labels are a subset
    assert b.num_classes == 5
    torch.save(nn.Sequential(nn.Linear(4, 3)).state_dict(), tmp_path / "lin.pt")
    with pytest.raises(ValueError) as e:
        build(tmp_path / "lin.pt", images(3), arch="small_cnn")
    assert "does not fit arch 'small_cnn'" in str(e.value) and "missing key(s) (features.0.weight" in str(e.value)
    assert "1 unexpected key(s) (0.weight" in str(e.value) or "unexpected key(s) (0.weight, 0.bias)" in str(e.value)
    torch.save(small(k=5), tmp_path / "whole.pt")  # a pickled module, not a state_dict: refused by weights_only
    with pytest.raises(ValueError, match=r"not a plain-tensor checkpoint .*save weights with torch.save\(model.state_dict"):
        build(tmp_path / "whole.pt", images(5), arch="small_cnn")
    torch.save({"epoch": 3, "lr": 0.1}, tmp_path / "meta.pt")
    with pytest.raises(ValueError, match=r"holds no state_dict \(found: epoch, lr\)"):
        build(tmp_path / "meta.pt", images(5), arch="small_cnn")
    with pytest.raises(FileNotFoundError, match="does not exist"):
        build(tmp_path / "nope.pt", images(5), arch="small_cnn")
    with pytest.raises(ValueError, match="set model.arch"):
        build(tmp_path / "k5.pt", images(5))
    with pytest.raises(ValueError, match="model.arch='resnet5000' is not small_cnn, a torchvision model name"):
        build(tmp_path / "k5.pt", images(5), arch="resnet5000")
    with pytest.raises(ValueError, match="needs model.path"):
        build_model({"name": "checkpoint"}, images(5))


def test_gray_data_normalisation_wrapper_traces_for_int8(tmp_path):
    ref = small(k=4, c=3)
    torch.save(ref.state_dict(), tmp_path / "rgb.pt")
    data = images(4, c=1)  # gray data for an RGB checkpoint: channels repeated inside the wrapper
    x = data["test"].x
    mean, std = [0.5, 0.4, 0.3], [0.2, 0.25, 0.3]
    b = build(tmp_path / "rgb.pt", data, arch="small_cnn", mean=mean, std=std)
    xr = (x.repeat(1, 3, 1, 1) - torch.tensor(mean).view(1, 3, 1, 1)) / torch.tensor(std).view(1, 3, 1, 1)
    assert torch.allclose(b.logits(x), ref(xr), atol=1e-5)
    assert b.head == "model.classifier.4"
    q = compress(b, {"name": "int8"}, x)  # FX traces the wrapper: normalisation stays, convs become int8
    assert q.logits(x).shape == (16, 4)
    assert any(".quantized." in type(m).__module__ for m in q.module.modules())  # int8 kernels, not a no-op
    with pytest.raises(ValueError, match="model.mean and model.std go together"):
        build(tmp_path / "rgb.pt", data, arch="small_cnn", mean=mean)
    with pytest.raises(ValueError, match="model.mean has 2 values but the model takes 3-channel images"):
        build(tmp_path / "rgb.pt", data, arch="small_cnn", mean=[0.1, 0.2], std=0.5)
    imnet = build(tmp_path / "rgb.pt", images(4), arch="small_cnn", mean="imagenet", std="imagenet")
    assert imnet.module.mean.flatten().tolist() == pytest.approx([0.485, 0.456, 0.406])


def test_torchvision_and_timm_architectures(tmp_path):
    tv = ensure_torchvision()
    import timm

    data = images(3, h=32, w=32, n=4)
    x = data["test"].x
    torch.manual_seed(0)
    mob = tv.models.mobilenet_v3_small(num_classes=3).eval()
    torch.save(mob.state_dict(), tmp_path / "mob.pt")
    b = build(tmp_path / "mob.pt", data, arch="mobilenet_v3_small")
    assert b.info["arch"] == "torchvision:mobilenet_v3_small"
    assert torch.allclose(b.logits(x), mob(x), atol=1e-5)
    gray = images(3, c=1, h=32, w=32, n=4)
    assert torch.allclose(build(tmp_path / "mob.pt", gray, arch="mobilenet_v3_small").logits(gray["test"].x),
                          mob(gray["test"].x.repeat(1, 3, 1, 1)), atol=1e-5)
    with pytest.raises(ValueError, match=r"has a 3-class head \('classifier.3.weight'\) but data set 'toy' has 5"):
        build(tmp_path / "mob.pt", images(5, h=32, w=32, n=5), arch="mobilenet_v3_small")
    # a timm checkpoint under a name torchvision also has: torchvision's keys do not fit, timm's do
    eff = timm.create_model("efficientnet_b0", num_classes=3).eval()
    torch.save(eff.state_dict(), tmp_path / "eff.pt")
    b2 = build(tmp_path / "eff.pt", data, arch="efficientnet_b0")
    assert b2.info["arch"] == "timm:efficientnet_b0"
    assert torch.allclose(b2.logits(x), eff(x), atol=1e-5)
    with pytest.raises(ValueError, match=r"does not fit arch 'torchvision:efficientnet_b0': \d+ missing key"):
        build(tmp_path / "eff.pt", data, arch="torchvision:efficientnet_b0")
    one = timm.create_model("test_resnet", num_classes=3, in_chans=1).eval()  # in_chans read off the checkpoint
    torch.save(one.state_dict(), tmp_path / "one.pt")
    b3 = build(tmp_path / "one.pt", gray, arch="timm:test_resnet")
    assert torch.allclose(b3.logits(gray["test"].x), one(gray["test"].x), atol=1e-5)
    rgb_on_gray = build(tmp_path / "one.pt", data, arch="timm:test_resnet")  # RGB data, 1-channel model: averaged
    assert torch.allclose(rgb_on_gray.logits(x), one(x.mean(1, keepdim=True)), atol=1e-5)


@pytest.fixture(scope="module")
def bert_dir(tmp_path_factory):
    return tiny_bert_folder(tmp_path_factory.mktemp("bert"), train=False)


def texts(mapping=None, k=2) -> DataBundle:
    t, labels = sentences(12, seed=0)
    y = torch.tensor([{"neg": 0, "pos": 1}[v] for v in labels]) % k
    return DataBundle("reviews", "text", k, {"calibration": Split(t, y), "test": Split(t, y)},
                      info={"label_mapping": mapping or {"neg": 0, "pos": 1}})


def test_hf_folder_loads_offline_without_remote_code(bert_dir, monkeypatch):
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    seen = {}
    orig = AutoModelForSequenceClassification.from_pretrained.__func__

    def spy(cls, *a, **kw):
        seen.update(kw)
        return orig(cls, *a, **kw)

    monkeypatch.setattr(AutoModelForSequenceClassification, "from_pretrained", classmethod(spy))
    data = texts()
    b = build(bert_dir, data, max_length=16)
    assert seen["trust_remote_code"] is False and seen["local_files_only"] is True
    assert b.modality == "text" and b.num_classes == 2 and b.head == "classifier"
    ref = orig(AutoModelForSequenceClassification, str(bert_dir)).eval()
    tok = AutoTokenizer.from_pretrained(str(bert_dir))
    enc = tok(data["test"].x, padding=True, truncation=True, max_length=16, return_tensors="pt")
    with torch.no_grad():
        want = ref(**enc).logits
    assert torch.allclose(b.logits(data["test"].x), want, atol=1e-5)
    build(bert_dir, data, trust_remote_code=True)
    assert seen["trust_remote_code"] is True


def test_hf_folder_mismatches(bert_dir, tmp_path):
    with pytest.raises(ValueError, match=r"data set 'reviews' has 3 classes but the model folder .* predicts 2"):
        build(bert_dir, texts(k=3))
    with pytest.raises(ValueError, match=r"model.num_classes=3 but the model folder .* has 2 labels"):
        build(bert_dir, texts(), num_classes=3)
    swapped = tiny_bert_folder(tmp_path / "swapped", train=False, id2label={0: "pos", 1: "neg"})
    with pytest.raises(ValueError, match=r"set data.class_names=\[pos,neg\] to use the model's order"):
        build(swapped, texts())
    assert build(swapped, texts(mapping={"pos": 0, "neg": 1})).num_classes == 2
    from transformers import BertModel

    enc_only = tmp_path / "encoder"
    BertModel.from_pretrained(str(bert_dir)).save_pretrained(enc_only)
    (enc_only / "vocab.txt").write_text((bert_dir / "vocab.txt").read_text())
    with pytest.raises(ValueError, match=r"lacks trained weights for 2 key\(s\) \(classifier.bias, classifier.weight\)"):
        build(enc_only, texts())
    with pytest.raises(ValueError, match="model 'checkpoint' takes text inputs but data set 'toy' is image"):
        build(bert_dir, images(2))
    with pytest.raises(ValueError, match="folder without config.json"):
        build(tmp_path, texts())
