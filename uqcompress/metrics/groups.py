"""Accuracy, flips and KL per group of questions (MMLU subject, knowledge relation, BIG-bench task).

For a run whose data items carry a group (``info["group_by"]`` names the item field), every group ``g`` of the test
split gets the keys ``<kind>.<g>.baseline.accuracy``, ``.compressed.accuracy``, ``.flips`` (C→I + I→C, over the
group), ``.c2i``, ``.i2c``, ``.kl`` (mean KL(base ‖ comp) over the options, nats) and ``.n``; with ``n_boot`` > 0
also 95% paired bootstrap intervals ``..._ci_low`` / ``..._ci_high`` of the two accuracies and the flips. The same
definitions as the run's headline keys (:func:`uqcompress.metrics.flips`, :func:`uqcompress.metrics.kl_from_logits`).

Example:
    >>> import numpy as np
    >>> z = np.array([[2.0, 0.0], [0.0, 2.0], [2.0, 0.0], [0.0, 2.0]])
    >>> m = group_metrics(z, z[:, ::-1], np.array([0, 1, 1, 1]), ["a", "a", "b", "b"], "relation")
    >>> m["relation.a.baseline.accuracy"], m["relation.a.compressed.accuracy"], m["relation.b.flips"], m["relation.b.n"]
    (1.0, 0.0, 1.0, 2)
"""
from __future__ import annotations

from typing import Any, Sequence

import numpy as np

from ._validate import ArrayLike
from .agreement import flips, kl_from_logits
from .bootstrap import bootstrap_ci
from .classification import accuracy

GROUP_KEYS = ("baseline.accuracy", "compressed.accuracy", "flips", "c2i", "i2c", "kl", "n")


def _softmax(z: np.ndarray) -> np.ndarray:
    z = z - z.max(1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(1, keepdims=True)


def group_metrics(base_logits: ArrayLike, comp_logits: ArrayLike, labels: ArrayLike, groups: Sequence[str],
                  kind: str, n_boot: int = 0, seed: int = 0) -> dict[str, Any]:
    """The ``<kind>.<group>.*`` keys (module docstring) for each group in order of first appearance."""
    b = np.asarray(getattr(base_logits, "numpy", lambda: base_logits)(), dtype=np.float64)
    c = np.asarray(getattr(comp_logits, "numpy", lambda: comp_logits)(), dtype=np.float64)
    y = np.asarray(getattr(labels, "numpy", lambda: labels)())
    g = np.asarray([str(x) for x in groups], dtype=object)
    if not (len(b) == len(c) == len(y) == len(g)):
        raise ValueError(f"groups: {len(b)} baseline rows, {len(c)} compressed rows, {len(y)} labels and {len(g)} "
                         f"group names must be as many")
    out: dict[str, Any] = {}
    for name in dict.fromkeys(g.tolist()):
        idx = np.flatnonzero(g == name)
        pb, pc, yy = _softmax(b[idx]), _softmax(c[idx]), y[idx]
        f = flips(pb, pc, yy)
        pre = f"{kind}.{name}."
        out.update({pre + "baseline.accuracy": accuracy(pb, yy), pre + "compressed.accuracy": accuracy(pc, yy),
                    pre + "flips": f["flips"], pre + "c2i": f["c2i"], pre + "i2c": f["i2c"],
                    pre + "kl": kl_from_logits(b[idx], c[idx]), pre + "n": int(len(idx))})
        if n_boot:
            for key, p in (("baseline.accuracy", pb), ("compressed.accuracy", pc)):
                lo, hi = bootstrap_ci(accuracy, p, yy, n_boot=n_boot, seed=seed)
                out[pre + key + "_ci_low"], out[pre + key + "_ci_high"] = lo, hi
            lo, hi = bootstrap_ci(flips, pb, pc, yy, n_boot=n_boot, seed=seed)["flips"]
            out[pre + "flips_ci_low"], out[pre + "flips_ci_high"] = lo, hi
    return out


def group_names(results: dict[str, Any], kind: str) -> list[str]:
    """The groups of ``kind`` in a run's flat results (those with a ``<kind>.<g>.n`` key), sorted.

    >>> group_names({"relation.capital.n": 3, "relation.city_country.n": 2, "n_test": 5}, "relation")
    ['capital', 'city_country']
    """
    pre = f"{kind}."
    return sorted(k[len(pre):-2] for k in results if k.startswith(pre) and k.endswith(".n"))
