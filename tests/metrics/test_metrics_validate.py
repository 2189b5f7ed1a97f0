"""Bad input -> one-line ValueError naming the argument and the offending shape / value; undefined -> NaN + warning."""
import math
import re
import warnings

import numpy as np
import pytest
import torch

from uqcompress import metrics as M
from uqcompress.metrics import _validate as V

P = np.array([[0.7, 0.2, 0.1], [0.1, 0.8, 0.1], [0.3, 0.3, 0.4]])
Y = np.array([0, 1, 2])


def one_line(excinfo) -> str:
    msg = str(excinfo.value)
    assert "\n" not in msg
    return msg


@pytest.mark.parametrize(
    "call, pattern",
    [
        (lambda: M.accuracy(np.array([0.5, 0.5]), [0]), r"probs must be 2-D \(N, K\); got shape \(2,\)"),
        (lambda: M.accuracy(np.zeros((3, 0)), Y), r"probs has no classes: shape \(3, 0\)"),
        (lambda: M.accuracy(np.where(np.arange(9).reshape(3, 3) == 7, np.nan, P), Y), r"probs has NaN at row 2"),
        (lambda: M.accuracy(np.where(np.arange(9).reshape(3, 3) == 1, np.inf, P), Y), r"probs has inf at row 0"),
        (lambda: M.accuracy(P * np.array([[1.0], [1.01], [1.0]]), Y), r"probs row 1 sums to 1\.01, not 1"),
        (lambda: M.accuracy(np.array([[0.7, 0.3], [1.2, -0.2]]), [0, 1]), r"probs has negative value -0\.2 at row 1"),
        (lambda: M.accuracy(P, [0, 1, 12]), r"labels has value 12 outside \[0, 3\)"),
        (lambda: M.accuracy(P, [0, -1, 2]), r"labels has value -1 outside \[0, 3\)"),
        (lambda: M.accuracy(P, [0, 1]), r"labels has length 2 but probs has 3 rows"),
        (lambda: M.accuracy(P, [0.0, 1.5, 2.0]), r"labels must be integers; got 1\.5 at index 1"),
        (lambda: M.accuracy(P, np.array(["a", "b", "c"])), r"labels must be integers; got dtype <U1"),
        (lambda: M.accuracy(P, Y[:, None]), r"labels must be 1-D \(N,\); got shape \(3, 1\)"),
        (lambda: M.flips(P, P[:2], [0, 1, 2]), r"comp_probs has shape \(2, 3\) but base_probs has shape \(3, 3\)"),
        (lambda: M.kl_divergence(P, P[:, :2] / P[:, :2].sum(1, keepdims=True)),
         r"comp_probs has shape \(3, 2\) but base_probs has shape \(3, 3\)"),
        (lambda: M.kl_from_logits(np.array([[0.0, np.nan]]), np.zeros((1, 2))), r"base_logits has NaN at row 0"),
        (lambda: M.selective([0.1, 0.2], [1, 0, 1], [1, 1]), r"correct has length 3 but confidence has length 2"),
        (lambda: M.selective([0.1, 0.2], [1, 2], [1, 1]), r"correct has value 2 at index 1; expected bool or 0/1"),
        (lambda: M.selective([0.1, np.inf], [1, 0], [1, 1]), r"confidence has inf at index 1"),
        (lambda: M.aurc([0.1, np.nan, 0.3], [1, 0, 1]), r"confidence has NaN at index 1"),
        (lambda: M.ood([[0.1, 0.2]], [0.3]), r"confidence_id must be 1-D \(N,\); got shape \(1, 2\)"),
        (lambda: M.spearman([1, 2, 3], [1, 2]), r"y has length 2 but x has length 3"),
        (lambda: M.calibration(P, Y, n_bins=0), r"n_bins must be a positive integer; got 0"),
        (lambda: M.accuracy(torch.ones(2, 2, dtype=torch.complex64) / 2, [0, 1]), r"probs must be real"),
    ],
)
def test_bad_input_is_one_line_value_error(call, pattern):
    with pytest.raises(ValueError) as excinfo:
        call()
    assert re.search(pattern, one_line(excinfo)), one_line(excinfo)


def test_row_sum_tolerance_is_1e_3():
    ok = np.array([[0.5, 0.5009], [0.4995, 0.5]])  # off by 9e-4 and 5e-4
    assert M.accuracy(ok, [1, 1]) == 1.0
    with pytest.raises(ValueError, match=r"probs row 0 sums to 1\.0011, not 1 \(tolerance 0\.001\)"):
        M.accuracy(np.array([[0.5, 0.5011], [0.5, 0.5]]), [1, 0])


@pytest.mark.parametrize(
    "make",
    [
        lambda p: p,
        lambda p: p.astype(np.float32),
        lambda p: p.astype(np.float16),
        lambda p: torch.from_numpy(p),
        lambda p: torch.from_numpy(p).float(),
        lambda p: torch.from_numpy(p).half(),
        lambda p: torch.from_numpy(p).bfloat16(),
        lambda p: torch.from_numpy(p).requires_grad_(True),
        lambda p: p.tolist(),
        lambda p: np.asfortranarray(p),
        lambda p: p.astype(">f8"),
    ],
    ids=["f64", "f32", "f16", "torch64", "torch32", "torch16", "bf16", "grad", "list", "fortran", "bigendian"],
)
def test_any_float_input_gives_python_floats(make):
    p = np.array([[0.5, 0.25, 0.25], [0.125, 0.75, 0.125]])  # exactly representable in every dtype
    y = np.array([0, 2])
    acc = M.accuracy(make(p), torch.tensor(y))
    assert type(acc) is float and acc == 0.5
    cal = M.calibration(make(p), y)
    assert all(type(v) is float for v in cal.values())
    np.testing.assert_allclose(cal["nll"], -(math.log(0.5) + math.log(0.125)) / 2, rtol=1e-15)


def test_read_only_and_non_contiguous_inputs():
    p = np.array([[0.2, 0.8], [0.6, 0.4], [0.5, 0.5]])
    ro = p.copy()
    ro.flags.writeable = False
    assert M.accuracy(ro, [1, 0, 0]) == 1.0
    wide = np.zeros((3, 4))
    wide[:, ::2] = p
    assert M.accuracy(wide[:, ::2], [1, 0, 0]) == 1.0


def test_labels_accept_bool_and_integral_floats():
    p = np.array([[0.2, 0.8], [0.6, 0.4]])
    assert M.accuracy(p, np.array([True, False])) == 1.0
    assert M.accuracy(p, torch.tensor([1.0, 0.0])) == 1.0


def test_undefined_returns_nan_and_warns_once_per_call():
    with warnings.catch_warnings(record=True) as rec:
        warnings.simplefilter("always")
        r = M.ood([], [0.1, 0.2])
    assert all(math.isnan(v) for v in r.values())
    assert len(rec) == 1 and issubclass(rec[0].category, M.UndefinedMetricWarning)
    assert "confidence_id is empty" in str(rec[0].message)


def test_default_filter_shows_a_repeated_message_once():
    with warnings.catch_warnings(record=True) as rec:
        warnings.simplefilter("default")
        for _ in range(5):
            M.selective([0.9, 0.8], [1, 0], [1, 1])  # nothing abstained, every time
    saved = [w for w in rec if "saved_rate" in str(w.message)]
    assert len(saved) == 1


def test_empty_inputs_are_nan_not_errors():
    empty = np.zeros((0, 3))
    with pytest.warns(M.UndefinedMetricWarning):
        assert math.isnan(M.accuracy(empty, np.zeros(0, int)))
    with pytest.warns(M.UndefinedMetricWarning):
        assert all(math.isnan(v) for v in M.flips(empty, empty, np.zeros(0, int)).values())
    with pytest.warns(M.UndefinedMetricWarning):
        assert math.isnan(M.kl_divergence(empty, empty))
    with pytest.warns(M.UndefinedMetricWarning):
        assert all(math.isnan(v) for v in M.calibration(empty, np.zeros(0, int)).values())
    with pytest.warns(M.UndefinedMetricWarning):
        assert all(math.isnan(v) for v in M.aurc([], []).values())
    cov, risk = M.risk_coverage_curve([], [])
    assert cov.size == 0 and risk.size == 0


def test_probs_validation_does_not_copy_good_float_arrays():
    p = np.full((4, 2), 0.5, dtype=np.float32)
    assert V.probs(p) is p
