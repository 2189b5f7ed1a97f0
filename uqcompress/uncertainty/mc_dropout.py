"""``uncertainty=mc_dropout``: predictive = mean of T stochastic softmaxes (Gal & Ghahramani 2016), scored by
``score``: ``msp`` (max of the mean), ``entropy`` (-H[mean p]) or ``mi`` (-BALD mutual information,
H[mean p] - mean H[p]). The passes come from ``Outputs.mc_probs`` (see :mod:`uqcompress.uncertainty.mc`).

With ``temperature=true`` τ is fit on the deterministic calibration logits and applied to every pass
(softmax(log p_t / τ)) before averaging.

Example:
    >>> import torch
    >>> from uqcompress.uncertainty import build_scorer
    >>> from uqcompress.uncertainty.base import Outputs
    >>> agree = torch.tensor([[0.9, 0.1], [0.9, 0.1]])           # two passes that agree
    >>> disagree = torch.tensor([[0.9, 0.1], [0.1, 0.9]])        # two passes that disagree
    >>> mc = torch.stack([agree, disagree], dim=1)               # (T=2, N=2, K=2)
    >>> s = build_scorer({"name": "mc_dropout", "score": "mi"})
    >>> c = s.score(Outputs(torch.zeros(2, 2), mc_probs=mc)); bool(c[0] > c[1])
    True
"""
from __future__ import annotations

import torch

from uqcompress.uncertainty import SCORERS
from uqcompress.uncertainty import functional as F
from uqcompress.uncertainty.base import Outputs, Scorer, as_outputs, require
from uqcompress.uncertainty.mc import MCOptions

SCORES = ("msp", "entropy", "mi")


@SCORERS.register("mc_dropout")
class MCDropout(Scorer):
    """MC-dropout scorer; ``samples``/``p``/``mode``/``seed`` configure the passes (:class:`MCOptions`)."""

    name = "mc_dropout"
    needs = frozenset({"mc"})

    def __init__(self, score: str = "mi", temperature: bool | float = False, samples: int = 30, p: float = 0.1,
                 mode: str = "full", seed: int = 0) -> None:
        super().__init__(temperature)
        if score not in SCORES:
            raise ValueError(f"uncertainty.score='{score}' is not one of: {', '.join(SCORES)}")
        self.score_name = score
        self.mc = MCOptions.from_options({"samples": samples, "p": p, "mode": mode, "seed": seed})

    def passes(self, out: Outputs) -> torch.Tensor:
        """The T passes (T, N, K) after temperature scaling, float64."""
        mc = require(out, "mc_probs", self.name).double()
        return F.rescale_probs(mc, self.temperature) if self.temperature != 1.0 else mc

    def probs(self, out: Outputs | torch.Tensor) -> torch.Tensor:
        return self.passes(as_outputs(out)).mean(0)

    def confidence(self, out: Outputs, probs: torch.Tensor) -> torch.Tensor:
        if self.score_name == "msp":
            return probs.max(-1).values
        if self.score_name == "entropy":
            return -F.entropy_from_probs(probs)
        return -F.mutual_information(self.passes(out))

    def config(self) -> dict:
        return {"score": self.score_name, **self.mc.key()}
