"""The budget a compressed model must meet: how far its answers may move from the baseline's.

Terms (each optional, at least one set), measured on a split against the baseline (``DESIGN.md`` definitions):

- ``flips``: (C→I + I→C) / N must be <= the limit;
- ``kl``: mean KL(baseline ‖ compressed) in nats must be <= the limit;
- ``accuracy_drop``: baseline accuracy - compressed accuracy must be <= the limit;
- ``risk`` + ``coverage``: with a selector that keeps the selective risk at ``risk`` (``risk_guarantee`` when that
  selector is registered, with ``delta``; else ``risk``: the largest calibration coverage whose risk <= target),
  the compressed model must still answer a share >= ``coverage`` of the inputs.

A budget is checked on the calibration split while searching and confirmed on the test split after.

Example:
    >>> from uqcompress.tune.budget import Budget
    >>> b = Budget.from_config({"flips": 0.03, "accuracy_drop": 0.01})
    >>> b.misses({"flips": 0.05, "kl": 0.1, "accuracy_drop": 0.004, "coverage": 0.9})
    {'flips': (0.05, 0.03)}
    >>> b.holds({"flips": 0.02, "accuracy_drop": 0.01}), b.describe({"flips": 0.05, "accuracy_drop": 0.0})
    (True, 'flips 0.05 > 0.03')
    >>> Budget.from_config({"flip": 0.03})
    Traceback (most recent call last):
    ...
    ValueError: unknown budget key(s) ['flip']; budget keys: flips, kl, accuracy_drop, risk, coverage, delta
"""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any, Mapping

#: measured terms with an upper limit (value <= limit holds) and those with a lower limit (value >= limit holds)
UPPER = ("flips", "kl", "accuracy_drop")
LOWER = ("coverage",)
KEYS = ("flips", "kl", "accuracy_drop", "risk", "coverage", "delta")


def _number(key: str, value: Any, low: float, high: float, *, open_low: bool = False, open_high: bool = False
            ) -> float | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise ValueError(f"budget.{key}={value!r} must be a number")
    ok_low = value > low if open_low else value >= low
    ok_high = value < high if open_high else value <= high
    if not (ok_low and ok_high):
        lo, hi = "(" if open_low else "[", ")" if open_high else "]"
        raise ValueError(f"budget.{key}={value} must be in {lo}{low:g}, {high:g}{hi}")
    return float(value)


@dataclass(frozen=True)
class Budget:
    """Limits on what compression may change (None = not part of the budget)."""

    flips: float | None = None
    kl: float | None = None
    accuracy_drop: float | None = None
    risk: float | None = None
    coverage: float | None = None
    delta: float | None = None

    @classmethod
    def from_config(cls, cfg: Mapping[str, Any] | None) -> "Budget":
        """Validated budget from the ``budget:`` config; one-line ``ValueError`` for an unknown key, a value out of
        range, ``risk`` without ``coverage`` (or the reverse), or no term at all."""
        cfg = dict(cfg or {})
        unknown = sorted(set(cfg) - set(KEYS))
        if unknown:
            raise ValueError(f"unknown budget key(s) {unknown}; budget keys: {', '.join(KEYS)}")
        b = cls(flips=_number("flips", cfg.get("flips"), 0, 1),
                kl=_number("kl", cfg.get("kl"), 0, math.inf, open_high=True),
                accuracy_drop=_number("accuracy_drop", cfg.get("accuracy_drop"), -1, 1),
                risk=_number("risk", cfg.get("risk"), 0, 1, open_high=True),
                coverage=_number("coverage", cfg.get("coverage"), 0, 1, open_low=True),
                delta=_number("delta", cfg.get("delta"), 0, 1, open_low=True, open_high=True))
        if (b.risk is None) != (b.coverage is None):
            raise ValueError("budget.risk and budget.coverage go together: the coverage the model must keep while "
                             "its selective risk stays at budget.risk (e.g. budget.risk=0.05 budget.coverage=0.8)")
        if b.delta is not None and b.risk is None:
            raise ValueError("budget.delta is the failure probability of the risk guarantee: set budget.risk and "
                             "budget.coverage with it")
        if not b.limits():
            raise ValueError(f"the budget is empty: set at least one of budget.flips, budget.kl, "
                             "budget.accuracy_drop or budget.risk + budget.coverage (e.g. budget.flips=0.03)")
        return b

    def limits(self) -> dict[str, float]:
        """The measured terms of this budget and their limits."""
        return {k: getattr(self, k) for k in UPPER + LOWER if getattr(self, k) is not None}

    def misses(self, measured: Mapping[str, float]) -> dict[str, tuple[float, float]]:
        """``{term: (value, limit)}`` for every term ``measured`` breaks; an undefined (NaN or absent) value misses."""
        out = {}
        for term, limit in self.limits().items():
            value = measured.get(term, math.nan)
            value = math.nan if value is None else float(value)
            ok = value <= limit + 1e-12 if term in UPPER else value >= limit - 1e-12
            if not ok:  # NaN compares False: an undefined term misses
                out[term] = (value, limit)
        return out

    def holds(self, measured: Mapping[str, float]) -> bool:
        return not self.misses(measured)

    def excess(self, measured: Mapping[str, float]) -> float:
        """How far ``measured`` is from meeting the budget: the largest miss over the terms, relative to its limit
        (absolute where the limit is 0); 0 when it holds, inf when a term is undefined."""
        worst = 0.0
        for term, (value, limit) in self.misses(measured).items():
            if math.isnan(value):
                return math.inf
            gap = value - limit if term in UPPER else limit - value
            worst = max(worst, gap / abs(limit) if limit else gap)
        return worst

    def describe(self, measured: Mapping[str, float]) -> str:
        """The missed terms as text (``flips 0.0500 > 0.0300; coverage 0.61 < 0.80``), '' when it holds."""
        parts = []
        for term, (value, limit) in self.misses(measured).items():
            parts.append(f"{term} {value:.4g} {'>' if term in UPPER else '<'} {limit:.4g}")
        return "; ".join(parts)

    def selector(self, available: Any) -> dict | None:
        """The selector config that sets the risk target: ``risk_guarantee`` (``target``, ``delta``) when it is in
        ``available`` (a registry or a list of names), else ``risk``; None without ``budget.risk``."""
        if self.risk is None:
            return None
        if "risk_guarantee" in available:
            cfg = {"name": "risk_guarantee", "target": self.risk}
            if self.delta is not None:
                cfg["delta"] = self.delta
            return cfg
        if self.delta is not None:
            raise ValueError("budget.delta needs the risk_guarantee selector, which this uqcompress does not have; "
                             "drop budget.delta (selector=risk is used)")
        return {"name": "risk", "target": self.risk}

    def as_dict(self) -> dict[str, float | None]:
        return asdict(self)





def measure_split(base: Any, comp: Any, split: str, coverage: float | None = None) -> dict[str, float]:
    """The budget's terms for two :class:`~uqcompress.pipeline.ModelEval` on one of their splits, as
    :func:`uqcompress.pipeline.compare` defines them (flips from the scorers' probabilities, KL from the logits):
    ``flips``, ``kl``, ``accuracy`` (compressed), ``accuracy_drop`` (baseline - compressed) and ``coverage`` (given:
    the compressed model's selector coverage on that split)."""
    from uqcompress import metrics as M

    y = base.outputs[split].labels
    pb, pc = base.probs[split], comp.probs[split]
    acc_b, acc_c = M.accuracy(pb, y), M.accuracy(pc, y)
    return {"flips": M.flips(pb, pc, y)["flips"],
            "kl": M.kl_from_logits(base.outputs[split].logits, comp.outputs[split].logits),
            "accuracy": acc_c, "accuracy_drop": acc_b - acc_c,
            "coverage": math.nan if coverage is None else float(coverage)}


__all__ = ["Budget", "KEYS", "LOWER", "UPPER", "measure_split"]
