"""``selector=risk_guarantee``: a threshold whose selective risk is certified <= ``target`` with probability 1 - ``delta``.

What is guaranteed. Let (x_i, y_i), i = 1..n, be the calibration split and (x, y) a new input drawn from the same
distribution (i.i.d.; exchangeable draws). The selector picks t from the calibration split such that

    P_calibration( P(model wrong on x | confidence(x) >= t) <= target ) >= 1 - delta,

i.e. the *selective* (conditional) risk, the error rate among the inputs the model answers, is at most ``target`` on
new data from the same distribution, except for a ``delta`` share of unlucky calibration draws. It is a statement
about the population error rate among answered inputs: the rate realised on a finite test set scatters around it
(``scripts/validate_guarantees.py`` measures how often a test split as large as the calibration split exceeds the
target). It does not hold under distribution shift (new classes, corrupted inputs), and it is void when the test set
was used to pick the threshold.

How (Geifman & El-Yaniv 2017, "Selective classification for deep neural networks", NeurIPS, SGR, Algorithm 1):
a binary search over the cuts between distinct calibration confidences tests k = ceil(log2(G + 1)) of the G cuts;
at each it bounds the risk by the exact one-sided Clopper-Pearson bound at level delta / k (union bound over the k
tests; ``scipy.special.betaincinv``) and keeps the largest-coverage tested cut whose bound is <= ``target``. As in
the paper's proof, each test's binomial bound treats its threshold as if fixed in advance, while the search picks
it among the calibration confidences; the resplit study checks the result on real predictions.

Why SGR and not Learn-then-Test with fixed-sequence testing (Angelopoulos et al. 2021): fixed-sequence testing at the
full level delta is tighter for the population risk and answers more inputs, but a threshold certified exactly at
level delta leaves no margin for the sampling noise of the data it then meets. In the resplit study on real
predictions (``scripts/validate_guarantees.py --compare-ltt``: EfficientNet-Lite0, MiniLM and the embedded default,
1,000 draws, delta = 0.1), test halves as large as the calibration half exceeded the target in up to 19% of draws
with fixed-sequence testing (above delta + 2 s.e. in 10 of 18 settings) and in at most 4.2% with SGR, which paid
3-6 points of coverage for it where both certify in every draw (more near the limit of the calibration size). Fixed-sequence testing also stops at the first cut that fails, so a burst of
confident errors ends its search early; SGR's binary search is not stopped by it.

Ties: a threshold only cuts between distinct confidence values, so tied samples are accepted or rejected together.
When no cut can be certified (too few calibration samples for the target, or too many errors) the selector abstains
on everything (threshold = +inf), logs one warning line naming target, delta and the calibration size, and
:meth:`facts` reports ``guarantee_valid = False``.

Example:
    >>> import torch
    >>> from uqcompress.selection import build_selector
    >>> conf = torch.linspace(1, 0, 2000, dtype=torch.float64)
    >>> correct = torch.arange(2000) < 1900                  # the 100 least confident answers are wrong
    >>> sel = build_selector({"name": "risk_guarantee", "target": 0.01, "delta": 0.1}).fit(conf, correct)
    >>> f = sel.facts(); f["guarantee_valid"], f["guarantee_calibration_coverage"], round(f["guarantee_bound"], 4)
    (True, 0.9545, 0.0099)
"""
from __future__ import annotations

import logging
from typing import ClassVar

import torch

from uqcompress.selection import SELECTORS
from uqcompress.selection.base import Selector
from uqcompress.selection.bounds import GuaranteeFit, check_target_delta, sgr
from uqcompress.uncertainty.base import Outputs

log = logging.getLogger(__name__)


class GuaranteedSelector(Selector):
    """SGR on a per-sample loss (``~correct``): what is a loss is set by the subclass's ``truth``."""

    loss_name: ClassVar[str] = "selective risk"

    def __init__(self, target: float = 0.02, delta: float = 0.1) -> None:
        super().__init__()
        self.target, self.delta = check_target_delta(target, delta, f"selector '{self.name}'")
        self.fit_result: GuaranteeFit | None = None

    def fit(self, confidence: torch.Tensor, correct: torch.Tensor, out: Outputs | None = None) -> "GuaranteedSelector":
        conf = torch.as_tensor(confidence).detach().double().cpu().numpy()
        loss = ~torch.as_tensor(correct).detach().bool().cpu().numpy()
        if loss.shape != conf.shape:
            raise ValueError(f"selector '{self.name}': confidence has shape {conf.shape} but correct has {loss.shape}")
        self.fit_result = sgr(conf, loss, self.target, self.delta)
        self.threshold = self.fit_result.threshold
        if not self.fit_result.valid:
            log.warning("selector=%s: no threshold certifies %s <= %g with probability >= %g (delta=%g) on %d "
                        "calibration samples; abstaining on everything", self.name, self.loss_name, self.target,
                        1 - self.delta, self.delta, self.fit_result.n)
        return self

    def state(self) -> dict:
        return {**super().state(), "target": self.target, "delta": self.delta}

    def facts(self) -> dict[str, float | bool | str]:
        """The certificate: ``guarantee_valid``, ``guarantee_bound`` (certified upper bound on the loss rate among
        accepted inputs, holding with probability >= 1 - delta; null when nothing is certified),
        ``guarantee_calibration_coverage`` / ``guarantee_calibration_loss`` at the threshold, target, delta, the
        number of SGR tests and what the loss is."""
        f = self.fit_result
        if f is None:
            return {}
        return {
            "guarantee_valid": f.valid,
            "guarantee_bound": f.bound,
            "guarantee_calibration_coverage": f.coverage,
            "guarantee_calibration_loss": f.empirical_loss,
            "guarantee_target": f.target,
            "guarantee_delta": f.delta,
            "guarantee_tests": f.tests,
            "guarantee_loss": self.loss_name,
            "guarantee_method": "SGR (Geifman & El-Yaniv 2017)",
        }


@SELECTORS.register("risk_guarantee")
class RiskGuaranteeSelector(GuaranteedSelector):
    """Error rate among accepted inputs <= ``target`` with probability >= 1 - ``delta`` over the calibration draw."""

    name = "risk_guarantee"
