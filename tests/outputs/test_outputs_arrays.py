"""outputs=arrays: .npz / .pt / .parquet files of logits or probabilities, split column with OOD rows, errors."""
import numpy as np
import pandas as pd
import pytest
import torch
from scipy.special import log_softmax, softmax

from uqcompress.outputs import load_outputs
from uqcompress.outputs.arrays import read_arrays


def _data(n=120, k=4, seed=0):
    rng = np.random.default_rng(seed)
    z = rng.normal(size=(n, k)) * 2
    y = rng.integers(0, k, n)
    split = np.array(["calibration", "test", "test", "ood"] * (n // 4))
    y = np.where(split == "ood", -1, y)
    return z, z + rng.normal(size=z.shape) * 0.2, y, split


def _save(path, fmt, scores, y=None, split=None, key="logits"):
    if fmt == "npz":
        arrays = {key: scores}
        if y is not None:
            arrays["labels"] = y
        if split is not None:
            arrays["split"] = split
        np.savez(path, **arrays)
    elif fmt == "pt":
        obj = {key: torch.from_numpy(scores)}
        if y is not None:
            obj["labels"] = torch.from_numpy(y)
        if split is not None:
            obj["split"] = split.tolist()
        torch.save(obj, path)
    else:
        prefix = "logit" if key == "logits" else "prob"
        df = pd.DataFrame({f"{prefix}_{j}": scores[:, j] for j in range(scores.shape[1])})
        if y is not None:
            df["labels"] = y
        if split is not None:
            df["split"] = split
        df.to_parquet(path)
    return str(path)


@pytest.mark.parametrize("fmt", ["npz", "pt", "parquet"])
def test_formats_read_the_same_rows_and_splits(tmp_path, fmt):
    zb, zc, y, split = _data()
    b = _save(tmp_path / f"b.{fmt}", fmt, zb, y, split)
    c = _save(tmp_path / f"c.{fmt}", fmt, zc, None if fmt == "pt" else y, split)  # labels may be left out of comp
    s = read_arrays(b, c)
    for name, mask in (("calibration", split == "calibration"), ("test", split == "test"), ("ood", split == "ood")):
        np.testing.assert_array_equal(s.baseline[name].logits.numpy(), zb[mask])
        np.testing.assert_array_equal(s.compressed[name].logits.numpy(), zc[mask])
        np.testing.assert_array_equal(s.rows[name]["row"].to_numpy(), np.flatnonzero(mask))
    np.testing.assert_array_equal(s.baseline["test"].labels.numpy(), y[split == "test"])
    assert s.baseline["ood"].labels is None  # -1: unlabelled OOD
    assert s.views[""].labels.shape == ((split != "ood").sum(),)


def test_probs_become_log_probs_and_a_list_column_parquet(tmp_path):
    zb, zc, y, _ = _data()
    pb, pc = softmax(zb, axis=1), softmax(zc, axis=1)
    pb[0] = [1.0, 0.0, 0.0, 0.0]  # an exact zero: ln(2.2e-308), finite
    pd.DataFrame({"probs": list(pb), "labels": y.clip(0)}).to_parquet(tmp_path / "b.parquet")
    pd.DataFrame({"probs": list(pc)}).to_parquet(tmp_path / "c.parquet")
    s = read_arrays(str(tmp_path / "b.parquet"), str(tmp_path / "c.parquet"), splits={"calibration": 0.4, "test": 0.6})
    z = np.concatenate([s.baseline[k].logits.numpy() for k in ("calibration", "test")])
    assert np.isfinite(z).all() and z.min() == pytest.approx(np.log(np.finfo(np.float64).tiny))
    rows = np.concatenate([s.rows[k]["row"].to_numpy() for k in ("calibration", "test")])
    np.testing.assert_allclose(softmax(z, axis=1), pb[rows], atol=1e-12)
    np.testing.assert_allclose(s.compressed["test"].logits.numpy(), log_softmax(zc, axis=1)[s.rows["test"]["row"]],
                               atol=1e-12)
    assert len(s.baseline["test"]) == pytest.approx(72, abs=3)


def test_labelled_ood_rows_are_a_covariate_shift(tmp_path):
    zb, zc, y, split = _data()
    y = np.where(split == "ood", 1, y)
    s = read_arrays(_save(tmp_path / "b.npz", "npz", zb, y, split), _save(tmp_path / "c.npz", "npz", zc, y, split))
    assert s.baseline["ood"].labels.tolist() == [1] * (split == "ood").sum()


def _one_line(e) -> str:
    assert "\n" not in str(e.value)
    return str(e.value)


def test_errors_are_one_line(tmp_path):
    zb, zc, y, split = _data()
    b = _save(tmp_path / "b.npz", "npz", zb, y, split)
    with pytest.raises(FileNotFoundError) as e:
        read_arrays(b, str(tmp_path / "none.npz"))
    assert _one_line(e) == f"outputs.compressed: path '{tmp_path / 'none.npz'}' does not exist"
    # arrays of different shapes
    c = _save(tmp_path / "c.npz", "npz", zc[:, :3], y, split)
    with pytest.raises(ValueError) as e:
        read_arrays(b, c)
    assert _one_line(e).startswith("outputs.compressed has shape (120, 3) but outputs.baseline has shape (120, 4)")
    # labels out of range
    bad = y.copy()
    bad[5] = 9
    with pytest.raises(ValueError) as e:
        read_arrays(_save(tmp_path / "b9.npz", "npz", zb, bad, split), _save(tmp_path / "c9.npz", "npz", zc))
    assert _one_line(e) == ("outputs.baseline labels has value 9 at row 5, outside [0, 4): outputs.baseline has 4 "
                            "classes")
    # probability rows that do not sum to 1
    p = softmax(zb, axis=1)
    p[3] *= 0.9
    with pytest.raises(ValueError) as e:
        read_arrays(_save(tmp_path / "bp.npz", "npz", p, y, split, key="probs"), c)
    assert _one_line(e) == "outputs.baseline probs row 3 sums to 0.9, not 1 (tolerance 0.001)"
    # labels that differ between the files, a missing key, both keys, NaN, a damaged file, an unknown suffix
    y2 = y.copy()
    y2[7] = (y2[7] + 1) % 4
    with pytest.raises(ValueError, match=r"outputs.compressed labels differ from outputs.baseline's at row 7"):
        read_arrays(b, _save(tmp_path / "cy.npz", "npz", zc, y2, split))
    np.savez(tmp_path / "nolab.npz", logits=zb)
    with pytest.raises(ValueError, match=r"outputs.baseline must hold 'labels' \(it holds: logits\)"):
        read_arrays(str(tmp_path / "nolab.npz"), b)
    np.savez(tmp_path / "both.npz", logits=zb, probs=softmax(zb, axis=1), labels=y)
    with pytest.raises(ValueError, match=r"exactly one of 'logits' or 'probs' \(it holds: labels, logits, probs\)"):
        read_arrays(str(tmp_path / "both.npz"), b)
    zn = zb.copy()
    zn[11, 2] = np.nan
    with pytest.raises(ValueError, match=r"outputs.baseline logits has NaN at row 11"):
        read_arrays(_save(tmp_path / "nan.npz", "npz", zn, y, split), b)
    (tmp_path / "cut.npz").write_bytes(open(b, "rb").read()[:100])
    with pytest.raises(ValueError) as e:
        read_arrays(str(tmp_path / "cut.npz"), b)
    assert _one_line(e).startswith("outputs.baseline: cannot read 'cut.npz'")
    with pytest.raises(ValueError, match=r"'b.csv' is not one of: .npz, .pt, .pth, .parquet"):
        (tmp_path / "b.csv").write_text("x")
        read_arrays(str(tmp_path / "b.csv"), b)
    np.savez(tmp_path / "objsplit.npz", logits=zb, labels=y, split=split.astype(object))
    with pytest.raises(ValueError, match=r"save split as a string array"):
        read_arrays(str(tmp_path / "objsplit.npz"), b)
    s2 = split.copy()
    s2[2] = "holdout"
    with pytest.raises(ValueError, match=r"^outputs.baseline split: value 'holdout' \(row 2\) is not one of"):
        read_arrays(_save(tmp_path / "h.npz", "npz", zb, y, s2), _save(tmp_path / "hc.npz", "npz", zc))
    with pytest.raises(ValueError, match=r"outputs=arrays needs outputs.baseline=FILE"):
        load_outputs({"name": "arrays", "compressed": b})
    with pytest.raises(ValueError, match=r"outputs 'arrays' has no option 'normalize'"):
        load_outputs({"name": "arrays", "baseline": b, "compressed": b, "normalize": "sum"})


def test_a_pickled_pt_file_is_refused(tmp_path):
    class Evil:
        def __reduce__(self):
            return (print, ("pwned",))

    torch.save({"logits": torch.zeros(4, 2), "labels": torch.zeros(4), "x": Evil()}, tmp_path / "evil.pt")
    with pytest.raises(ValueError, match=r"outputs.baseline: cannot read 'evil.pt'"):
        read_arrays(str(tmp_path / "evil.pt"), str(tmp_path / "evil.pt"))
