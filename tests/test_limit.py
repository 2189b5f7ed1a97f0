"""``limit`` caps the evaluated splits (calibration, test, OOD), never the fit split a model is trained and cached on:
``limit=100`` must not retrain the default CNN on 100 images. ``fit_limit`` caps the fit split (quick tests)."""
import torch

from uqcompress.models import BuildContext, build_model
from uqcompress.pipeline import load_data

CFG = {"data": {"name": "mnist"}, "seed": 0, "ood": {"name": "none"}}


def _trained_key(cfg, monkeypatch):
    """The cache key small_cnn would train (or load) its weights under, and the number of fit images it would use;
    nothing is trained."""
    import uqcompress.models.small_cnn as small_cnn

    seen = {}

    def no_training(module, kind, key, train, log=None):
        seen["key"] = key
        return module

    monkeypatch.setattr(small_cnn, "cached_weights", no_training)
    data, _ = load_data(cfg)
    build_model({"name": "small_cnn", "epochs": 1}, data, BuildContext(progress=False))
    return seen["key"], len(data["fit"]), data


def test_limit_caps_evaluation_splits_but_not_the_trained_model(monkeypatch):
    full_key, full_fit, full = _trained_key(CFG, monkeypatch)
    key, n_fit, limited = _trained_key({**CFG, "limit": 100}, monkeypatch)
    assert key == full_key and n_fit == full_fit == 3000  # 60% of 5,000 digits: the same weights, from the cache
    assert torch.equal(limited["fit"].x, full["fit"].x)
    assert len(limited["calibration"]) == len(limited["test"]) == 100
    assert torch.equal(limited["test"].x, full["test"].x[:100])


def test_fit_limit_caps_the_fit_split_and_is_its_own_cache_key(monkeypatch):
    full_key, _, _ = _trained_key(CFG, monkeypatch)
    key, n_fit, data = _trained_key({**CFG, "limit": 100, "fit_limit": 300}, monkeypatch)
    assert n_fit == 300 and key != full_key and len(data["test"]) == 100
    again, _, _ = _trained_key({**CFG, "limit": 50, "fit_limit": 300}, monkeypatch)
    assert again == key  # the evaluation cap never changes the model
