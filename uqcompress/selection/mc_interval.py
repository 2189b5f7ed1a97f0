"""``selector=mc_interval``: the rule of Singhal & Srinivasan (arXiv 2403.01076).

Over T MC-dropout passes, each class gets the interval [mean - Z·std, mean + Z·std] of its softmax probability
(Z = ``conf_factor``); predict only when the top class's lower bound exceeds every other class's upper bound,
otherwise abstain. Nothing is fit; the passes come from ``Outputs.mc_probs`` and are configured by the
``uncertainty`` group's ``samples``/``p``/``mode``/``seed`` (defaults T=30, full mode, when the scorer is not
``mc_dropout``). The top class is the argmax of the mean of the passes.

Example:
    >>> import torch
    >>> from uqcompress.selection import build_selector
    >>> from uqcompress.uncertainty.base import Outputs
    >>> sure = torch.tensor([[0.9, 0.1], [0.8, 0.2], [0.85, 0.15]])   # T=3 passes of one sample
    >>> torn = torch.tensor([[0.9, 0.1], [0.2, 0.8], [0.6, 0.4]])
    >>> out = Outputs(torch.zeros(2, 2), mc_probs=torch.stack([sure, torn], 1))
    >>> build_selector({"name": "mc_interval", "conf_factor": 1.0}).accept(torch.zeros(2), out).tolist()
    [True, False]
"""
from __future__ import annotations

import torch

from uqcompress.selection import SELECTORS
from uqcompress.selection.base import Selector
from uqcompress.uncertainty.base import Outputs, require
from uqcompress.uncertainty.functional import mc_interval_accept


@SELECTORS.register("mc_interval")
class MCIntervalSelector(Selector):
    """Accept iff lower(top class) > max over other classes of upper; ``conf_factor`` = Z."""

    name = "mc_interval"
    needs = frozenset({"mc"})

    def __init__(self, conf_factor: float = 1.0) -> None:
        super().__init__()
        if not conf_factor >= 0:
            raise ValueError(f"selector.conf_factor={conf_factor} must be >= 0")
        self.conf_factor = float(conf_factor)
        self.threshold = float("nan")  # rule-based: no confidence threshold

    def accept(self, confidence: torch.Tensor, out: Outputs | None = None) -> torch.Tensor:
        if out is None:
            raise ValueError("selector 'mc_interval' needs the model outputs with MC-dropout passes (out=None given)")
        return mc_interval_accept(require(out, "mc_probs", self.name), self.conf_factor)

    def state(self) -> dict:
        return {**super().state(), "conf_factor": self.conf_factor}
