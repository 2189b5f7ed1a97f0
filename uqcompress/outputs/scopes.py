"""Whole-run keys of a stored-outputs run, over ALL its labelled questions (calibration and test), pooled and per
task, so they can be checked against the numbers the other tool printed (lm-eval's ``acc`` / ``acc_norm``).

For each view (key suffix ``""``; for lm-eval also ``"_norm"``, see :class:`~uqcompress.outputs.base.StoredOutputs`)
and each scope (``all``, and ``task.<name>`` when the questions come in tasks):

* ``<scope>.baseline.accuracy<s>``, ``<scope>.compressed.accuracy<s>``: :func:`uqcompress.metrics.accuracy`;
* ``<scope>.compressed.flips<s>``, ``.c2i<s>``, ``.i2c<s>``, ``.all_flips<s>``: :func:`uqcompress.metrics.flips`;
* ``<scope>.compressed.kl<s>`` (mean KL(base || comp) over the options, nats) and, for the first view, the KL
  distribution ``<scope>.compressed.kl_sem`` ... ``kl_max``: :func:`uqcompress.metrics.kl_distribution`;
* ``<scope>.n``: the number of questions.

Example:
    >>> import numpy as np
    >>> from uqcompress.outputs.base import Scores
    >>> z = np.array([[2.0, 0.0], [0.0, 2.0], [2.0, 0.0]])
    >>> m = scope_metrics({"": Scores(z, z[:, ::-1].copy(), np.array([0, 1, 1]))})
    >>> m["all.baseline.accuracy"], m["all.compressed.accuracy"], m["all.compressed.flips"], m["all.n"]
    (0.6666666666666666, 0.3333333333333333, 1.0, 3)
"""
from __future__ import annotations

from typing import Any

import numpy as np

from uqcompress import metrics as M
from uqcompress.metrics.agreement import KL_DISTRIBUTION_KEYS
from uqcompress.outputs.base import Scores


def softmax(z: np.ndarray, axis: int = 1) -> np.ndarray:
    """``scipy.special.softmax`` (the same operations), without importing scipy into a stored-outputs run (0.2 s).

    >>> softmax(np.array([[0.0, np.log(3.0)]])).round(6).tolist()
    [[0.25, 0.75]]
    """
    e = np.exp(z - np.amax(z, axis=axis, keepdims=True))
    return e / np.sum(e, axis=axis, keepdims=True)


def _block(b: np.ndarray, c: np.ndarray, y: np.ndarray, suffix: str, distribution: bool) -> dict[str, Any]:
    pb, pc = softmax(b, axis=1), softmax(c, axis=1)
    out: dict[str, Any] = {f"baseline.accuracy{suffix}": M.accuracy(pb, y),
                           f"compressed.accuracy{suffix}": M.accuracy(pc, y)}
    f = M.flips(pb, pc, y)
    out.update({f"compressed.{k}{suffix}": f[k] for k in ("flips", "c2i", "i2c", "all_flips")})
    if distribution:
        d = M.kl_distribution(b, c)
        out[f"compressed.kl{suffix}"] = d["kl_mean"]
        out.update({f"compressed.{k}": d[k] for k in KL_DISTRIBUTION_KEYS if k != "kl_mean"})
    else:
        out[f"compressed.kl{suffix}"] = M.kl_from_logits(b, c)
    return out


def scope_metrics(views: dict[str, Scores]) -> dict[str, Any]:
    """The ``all.*`` and ``task.<name>.*`` keys (see the module docstring) of every view."""
    out: dict[str, Any] = {}
    for i, (suffix, v) in enumerate(views.items()):
        scopes = [("all", np.arange(len(v.labels)))]
        if v.group is not None and len(v.group_names) > 0:
            scopes += [(f"task.{name}", np.flatnonzero(v.group == g)) for g, name in enumerate(v.group_names)]
        for scope, idx in scopes:
            if len(idx) == 0:
                continue
            block = _block(v.baseline[idx], v.compressed[idx], v.labels[idx], suffix, distribution=i == 0)
            out.update({f"{scope}.{k}": val for k, val in block.items()})
            out[f"{scope}.n"] = int(len(idx))
    return out
