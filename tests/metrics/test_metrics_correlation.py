"""spearman against scipy.stats.spearmanr."""
import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy.stats import spearmanr

from uqcompress import metrics as M


def test_spearman_hand_computed_with_ties():
    # x ranks: 1, 2.5, 2.5, 4 ; y ranks: 1, 2, 3, 4 -> Pearson of the ranks
    rx = np.array([1, 2.5, 2.5, 4]) - 2.5
    ry = np.array([1, 2, 3, 4]) - 2.5
    expected = rx @ ry / math.sqrt((rx @ rx) * (ry @ ry))
    assert M.spearman([0.1, 0.2, 0.2, 0.3], [1, 2, 3, 4]) == pytest.approx(expected, abs=1e-15)


@settings(max_examples=150, deadline=None)
@given(st.integers(0, 2**32 - 1), st.integers(2, 40), st.integers(1, 8))
def test_spearman_matches_scipy(seed, n, levels):
    rng = np.random.default_rng(seed)
    x = rng.integers(0, levels, n) / levels  # flips of a sweep: many ties
    y = x + rng.normal(0, 0.3, n)
    if len(np.unique(x)) < 2:
        with pytest.warns(M.UndefinedMetricWarning):
            assert math.isnan(M.spearman(x, y))
        return
    assert M.spearman(x, y) == pytest.approx(spearmanr(x, y).statistic, abs=1e-12)


def test_spearman_undefined_cases():
    with pytest.warns(M.UndefinedMetricWarning, match="fewer than 2"):
        assert math.isnan(M.spearman([0.1], [0.2]))
    with pytest.warns(M.UndefinedMetricWarning, match="constant"):
        assert math.isnan(M.spearman([0.1, 0.2, 0.3], [1.0, 1.0, 1.0]))
    assert M.spearman([1, 2, 3], [3, 2, 1]) == -1.0
