"""Compress to a budget: the smallest compressed model whose answers stay the baseline's.

``python -m uqcompress.tune [overrides]``.

Accuracy can hold while many answers flip (Dutta et al. 2024), so the budget bounds what changed, not only the score:
``budget.flips``, ``budget.kl``, ``budget.accuracy_drop`` and ``budget.risk`` + ``budget.coverage``
(:mod:`uqcompress.tune.budget`). A run:

1. checks the budget, the ``tune:`` options and the candidate schemes (``tune.schemes=[int8,int8_dynamic]``) before
   any model work (:mod:`uqcompress.tune.options`);
2. evaluates every candidate like a plain run (calibration + test, cached);
3. where the smallest candidate misses the budget and its scheme can keep layers float (``Scheme.skip_layers``:
   static int8's ``quant.skip``), ranks its layers on a ranking subset of the calibration split, two ways (each
   layer int8 *alone* in the float model; each layer *reverted* to float in the int8 model:
   :mod:`uqcompress.tune.sensitivity`), by swapping single layers between the two models
   (:mod:`uqcompress.tune.swap`: one calibration, no rebuild);
4. walks each ranking, keeping the most sensitive layers float one at a time (real ``quant.skip`` models, whose
   calibration reuses the observer statistics of the one calibration pass: :mod:`uqcompress.compress._observers`)
   until the budget holds on the calibration split (:mod:`uqcompress.tune.search`), says which ranking needed fewer
   layers, and walks the better one for the accuracy-only control (NNCF's ``max_drop`` rule,
   ``tune.control_max_drop``);
5. chooses the smallest model that meets the budget on calibration, and only then looks at the test split: every
   candidate's test results, and the chosen one as a plain pipeline run (the same ``results.json`` keys, a 95%
   bootstrap interval of its flips, its ``SelectivePredictor`` exported).

The run folder holds ``tune.json`` (every candidate, the rankings, the walks, ``chosen``), ``tune.csv``,
``tune_pareto.png`` (size vs flips), the chosen model's ``results.json`` / ``predictions.csv`` and ``predictor.pt``.
Every model pass is cached and logged (``<cache>/events.jsonl``), so a rerun with another budget runs only what it
has not seen (``scripts/bench_tune.py`` counts them).

Example (the embedded default, shrunk):
    >>> from uqcompress.tune import tune_config
    >>> res = tune_config({"model": {"name": "small_cnn", "epochs": 1}, "data": {"name": "mnist"}, "limit": 300,
    ...                    "fit_limit": 300, "quant": {"name": "int8"}, "progress": False, "budget": {"flips": 0.01},
    ...                    "tune": {"schemes": ["int8"], "export": False}})  # doctest: +SKIP
    >>> res.choice.chosen.name  # doctest: +SKIP
    'int8'
"""
from __future__ import annotations

from uqcompress.tune.budget import Budget
from uqcompress.tune.run import TuneResult, tune_config

__all__ = ["Budget", "TuneResult", "tune_config"]
