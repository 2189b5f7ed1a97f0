"""uqcompress.outputs.scopes: its numpy softmax against scipy's (the whole-run keys are checked in test_outputs_*)."""
from __future__ import annotations

import numpy as np
from scipy.special import softmax as scipy_softmax

from uqcompress.outputs.scopes import softmax


def test_softmax_equals_scipy_on_random_and_extreme_logits():
    rng = np.random.default_rng(0)
    for z in (rng.normal(size=(500, 4)) * 3, rng.normal(size=(7, 5)) * 800, np.array([[1e308, 0.0], [-1e308, 0.0]])):
        np.testing.assert_array_equal(softmax(z, axis=1), scipy_softmax(z, axis=1))
