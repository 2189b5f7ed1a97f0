"""``selector=agreement_guarantee``: the share of answered inputs on which the compressed model's label differs from
the baseline's is certified <= ``target`` with probability >= 1 - ``delta`` over the calibration draw.

This is what a team replacing a model by its compressed copy can promise: "on the inputs the compressed model
answers, it gives the original model's answer, except for at most ``target`` of them" (with probability 1 - delta
over the calibration split, for new inputs from the calibration distribution). It needs no ground-truth labels, only
both models' answers on a calibration split, so it can be re-certified on unlabelled production traffic. Same
algorithm (SGR), same assumptions and same tie handling as :mod:`uqcompress.selection.risk_guarantee`; the loss is
disagreement instead of error.

``fit(confidence, correct, out)``: ``correct`` is True where the prediction equals the reference model's label
(the pipeline forms it from ``Outputs.reference`` because ``truth = "reference"``); ``out.reference`` must be set.

Example:
    >>> import torch
    >>> from uqcompress.selection import build_selector
    >>> from uqcompress.uncertainty.base import Outputs
    >>> conf = torch.linspace(1, 0, 1000, dtype=torch.float64)
    >>> ref = torch.zeros(1000, dtype=torch.long)
    >>> pred = torch.where(torch.arange(1000) < 800, 0, 1)             # the 200 least confident disagree
    >>> out = Outputs(torch.zeros(1000, 2), reference=ref)
    >>> sel = build_selector({"name": "agreement_guarantee", "target": 0.02, "delta": 0.1})
    >>> f = sel.fit(conf, pred == ref, out).facts()   # answers 807: 7 disagreements, certified <= 1.97% w.p. 0.9
    >>> f["guarantee_calibration_coverage"], round(f["guarantee_bound"], 4)
    (0.807, 0.0197)
"""
from __future__ import annotations

from uqcompress.selection import SELECTORS
from uqcompress.selection.risk_guarantee import GuaranteedSelector
from uqcompress.uncertainty.base import Outputs


@SELECTORS.register("agreement_guarantee")
class AgreementGuaranteeSelector(GuaranteedSelector):
    """Disagreement with the reference model among accepted inputs <= ``target`` w.p. >= 1 - ``delta``."""

    name = "agreement_guarantee"
    needs = frozenset({"reference"})
    truth = "reference"
    loss_name = "disagreement with the reference model"

    def fit(self, confidence, correct, out: Outputs | None = None) -> "AgreementGuaranteeSelector":
        if out is None or out.reference is None:
            raise ValueError("selector 'agreement_guarantee' needs the reference (baseline) model's labels in "
                             "Outputs.reference, and correct = (prediction == reference)")
        if len(out.reference) != len(confidence):
            raise ValueError(f"selector 'agreement_guarantee': Outputs.reference has {len(out.reference)} labels "
                             f"for {len(confidence)} confidences")
        return super().fit(confidence, correct, out)
