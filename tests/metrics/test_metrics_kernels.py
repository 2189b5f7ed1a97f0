"""Shared kernels: both top-1 paths agree (ties included), bin edges, the blocked tie-group sweep."""
from unittest import mock

import numpy as np
import pytest
import torch
from metric_data import tied_probs

from uqcompress.metrics import _kernels as K


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_top1_torch_and_numpy_paths_agree_on_ties(dtype):
    rng = np.random.default_rng(0)
    p = tied_probs(rng, 30000, 5).astype(dtype)  # many rows with tied maxima
    p16 = torch.from_numpy(p).half().float().numpy().astype(dtype)  # fp16-rounded: even more ties
    for x in (p, p16):
        with mock.patch.object(K, "TORCH_MIN_ELEMS", 1), mock.patch.object(K, "_idle_core", lambda: True):
            v_t, i_t = K.top1(x)
            a_t = K.argmax_rows(x)
        with mock.patch.object(K, "TORCH_MIN_ELEMS", 1 << 62):
            v_n, i_n = K.top1(x)
            a_n = K.argmax_rows(x)
        np.testing.assert_array_equal(i_t, x.argmax(axis=1))
        np.testing.assert_array_equal(i_n, x.argmax(axis=1))
        np.testing.assert_array_equal(v_t, v_n)
        np.testing.assert_array_equal(a_t, i_t)
        np.testing.assert_array_equal(a_n, i_n)


def _bad_probs() -> dict[str, np.ndarray]:
    rng = np.random.default_rng(1)
    good = rng.dirichlet(np.ones(4), 64)
    cases = {}
    for name, (row, col, value) in {"nan": (17, 2, np.nan), "inf": (5, 0, np.inf), "negative": (9, 1, -0.25),
                                     "sum": (30, 3, 3.0)}.items():
        x = good.copy()
        x[row, col] = value
        cases[name] = x
    return cases


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_validation_torch_and_numpy_paths_give_the_same_errors(dtype):
    from uqcompress import metrics as M

    good = np.random.default_rng(0).dirichlet(np.ones(4), 64).astype(dtype)
    y = np.arange(64) % 4
    for torch_path in (True, False):
        min_elems = 1 if torch_path else 1 << 62
        with mock.patch.object(K, "TORCH_MIN_ELEMS", min_elems), mock.patch.object(K, "_idle_core", lambda: torch_path):
            s, lowest = K.row_sums_and_min(good)
            np.testing.assert_allclose(s, good.sum(1), rtol=1e-6)
            assert lowest == good.min()
            assert M.accuracy(good, y) == float(np.mean(good.argmax(1) == y))
            messages = {}
            for name, bad in _bad_probs().items():
                with pytest.raises(ValueError) as e:
                    M.accuracy(bad.astype(dtype), y)
                messages[name] = str(e.value)
        assert messages == {"nan": "probs has NaN at row 17", "inf": "probs has inf at row 5",
                            "negative": "probs has negative value -0.25 at row 9",
                            "sum": messages["sum"]} and messages["sum"].startswith("probs row 30 sums to")


def test_bins_follow_linspace_edges_like_numpy_histogram():
    edges = np.linspace(0.0, 1.0, 16)
    conf = np.concatenate([edges, np.nextafter(edges, -1.0)[1:], np.nextafter(edges, 2.0)[:-1], [1.0005]])
    expected = np.clip(np.searchsorted(edges, conf, side="right") - 1, 0, 14)
    np.testing.assert_array_equal(K.bin_index(conf, 15), expected)
    inside = conf[conf <= 1.0]
    counts, _ = np.histogram(inside, bins=edges)
    np.testing.assert_array_equal(np.bincount(K.bin_index(inside, 15), minlength=15), counts)


@pytest.mark.parametrize("block", [1, 2, 3, 64, 1 << 16])
def test_merged_cumcount_blocks_equal_brute_force(block):
    rng = np.random.default_rng(block)
    a = rng.integers(0, 7, 50).astype(np.float32)
    b = rng.integers(3, 12, 30).astype(np.float64)
    with mock.patch.object(K, "GROUP_BLOCK", block):
        parts = list(K.merged_cumcount_blocks(a, b))
    vals, cum_a, cum_b = (np.concatenate(x) for x in zip(*parts))
    np.testing.assert_array_equal(vals, np.unique(np.r_[a, b]))
    np.testing.assert_array_equal(cum_a, [(a <= v).sum() for v in vals])
    np.testing.assert_array_equal(cum_b, [(b <= v).sum() for v in vals])
    assert list(K.merged_cumcount_blocks(a[:0], b[:0])) == []


def test_dot_is_exact_on_integers():
    x = np.full(1000, 2**40, dtype=np.int64)
    assert int(K.dot(x, np.full(1000, 3, dtype=np.int64))) == 3 * 1000 * 2**40
