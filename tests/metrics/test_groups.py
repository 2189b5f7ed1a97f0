"""Per-group accuracy, flips and KL (uqcompress.metrics.groups) against sklearn / scipy on random logits, and the
per-relation table on the run page."""
from __future__ import annotations

import json

import numpy as np
from scipy.special import softmax
from scipy.stats import entropy
from sklearn.metrics import accuracy_score

from uqcompress.metrics.groups import group_metrics, group_names


def test_group_metrics_match_independent_references():
    rng = np.random.default_rng(0)
    n, k = 300, 4
    b = rng.normal(size=(n, k)) * 2
    c = b + rng.normal(size=(n, k))
    y = rng.integers(0, k, n)
    g = rng.choice(["capital", "currency", "demonym"], n)
    m = group_metrics(b, c, y, g, "relation", n_boot=200, seed=1)
    assert group_names(m, "relation") == ["capital", "currency", "demonym"]
    for name in ("capital", "currency", "demonym"):
        i = g == name
        yb, yc = b[i].argmax(1), c[i].argmax(1)
        pre = f"relation.{name}."
        assert m[pre + "n"] == i.sum()
        assert np.isclose(m[pre + "baseline.accuracy"], accuracy_score(y[i], yb))
        assert np.isclose(m[pre + "compressed.accuracy"], accuracy_score(y[i], yc))
        c2i = np.mean((yb == y[i]) & (yc != y[i]))
        i2c = np.mean((yb != y[i]) & (yc == y[i]))
        assert np.isclose(m[pre + "c2i"], c2i) and np.isclose(m[pre + "i2c"], i2c)
        assert np.isclose(m[pre + "flips"], c2i + i2c)
        kl = np.mean([entropy(p, q) for p, q in zip(softmax(b[i], 1), softmax(c[i], 1))])
        assert np.isclose(m[pre + "kl"], kl)
        for key in ("baseline.accuracy", "compressed.accuracy", "flips"):
            assert m[pre + key + "_ci_low"] <= m[pre + key] <= m[pre + key + "_ci_high"]
    assert np.isclose(sum(m[f"relation.{x}.n"] * m[f"relation.{x}.baseline.accuracy"]
                          for x in ("capital", "currency", "demonym")) / n, accuracy_score(y, b.argmax(1)))


def test_run_page_shows_the_per_relation_table(tmp_path):
    from uqcompress.report.html import run_page

    res = {"config.model": "smollm2", "config.quant": "int4_weight_only", "config.data": "knowledge",
           "baseline.accuracy": 0.8, "compressed.accuracy": 0.7, "compressed.flips": 0.1, "n_test": 10,
           "group_by": "relation", **group_metrics(np.eye(4)[[0, 1, 2, 3]] * 3, np.eye(4)[[0, 1, 1, 3]] * 3,
                                                      np.array([0, 1, 2, 3]), ["capital"] * 2 + ["currency"] * 2,
                                                      "relation")}
    (tmp_path / "results.json").write_text(json.dumps(res))
    page = run_page(tmp_path).read_text()
    assert "<h2>Per relation (test split)</h2>" in page
    row = page[page.index(">currency<"):].split("</tr>")[0]
    assert ">1.000<" in row and ">0.500<" in row  # baseline 2/2, compressed 1/2 on currency
