"""The cascade plot (accuracy and agreement vs deferral rate, one line per run) is written from predictions tables."""
import numpy as np
import pandas as pd
from PIL import Image

from uqcompress.report.plots import cascade_curves


def predictions(rng, n=300, flip=0.1):
    label = rng.integers(0, 10, n)
    base = np.where(rng.random(n) < 0.9, label, rng.integers(0, 10, n))
    conf = rng.random(n)
    comp = np.where(rng.random(n) < flip * 2 * (1 - conf), (base + 1) % 10, base)
    test = pd.DataFrame({"split": "test", "label": label, "baseline_pred": base, "compressed_pred": comp,
                         "compressed_confidence": conf, "compressed_accepted": conf >= 0.2})
    ood = test.head(20).assign(split="ood", label=-1)          # OOD rows (no labels) are ignored
    return pd.concat([test, ood], ignore_index=True)


def test_cascade_plot_is_written(tmp_path):
    rng = np.random.default_rng(0)
    runs = {"uncertainty=msp": predictions(rng), "uncertainty=entropy": predictions(rng, flip=0.2),
            "uncertainty=margin": predictions(rng).drop(columns="compressed_accepted")}
    path = cascade_curves(runs, tmp_path / "plots" / "cascade.png")
    assert path == tmp_path / "plots" / "cascade.png" and path.is_file()
    with Image.open(path) as im:
        assert im.format == "PNG" and im.size[0] > 1000
    assert not list(tmp_path.rglob("*.tmp.png"))
