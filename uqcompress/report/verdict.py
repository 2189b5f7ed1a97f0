"""One line that says whether the compressed model can replace the baseline, at the run's chosen threshold.

The decision rule (:func:`verdict`), on the flat keys of ``results.json`` (test split):

- **flips** (C→I + I→C, over every test input) at most ``max_flips`` (default :data:`MAX_FLIPS` = 2%);
- **accuracy drop** (baseline − compressed) at most ``max_accuracy_drop`` (default :data:`MAX_ACCURACY_DROP` = 1
  percentage point);
- where the selector has a risk target (``selector=risk`` / ``risk_guarantee``: selective risk among answered inputs;
  ``agreement_guarantee``: selective disagreement with the baseline), the test split's value is at most the target;
- where the selector certifies a guarantee (``risk_guarantee`` / ``agreement_guarantee``), the guarantee holds
  (``guarantee_valid``: a threshold could be certified on the calibration split).

All terms pass: "can replace"; otherwise "cannot replace", naming each term that fails; a term that cannot be judged
(missing or NaN, e.g. no labels) is named as unknown and there is no "can". Speedup and size are reported as ratios
(baseline / compressed: ``×2.1 faster``), never judged (whether ×1.3 is worth it is the reader's call). With a cascade
(``deploy.fallback=baseline``) the line adds the cascade's accuracy, flips, deferral rate and cost.

Example:
    >>> print(verdict({"baseline.accuracy": 0.90, "compressed.accuracy": 0.895, "compressed.flips": 0.01,
    ...                "compressed.agreement": 0.985, "compressed.threshold": 0.5, "compressed.coverage": 0.9,
    ...                "compressed.selective_risk": 0.04, "compressed.speedup": 2.0,
    ...                "baseline.model_size_bytes": 400, "compressed.model_size_bytes": 100}))
    CAN REPLACE the baseline at threshold 0.5: flips 1.0% (≤ 2%), accuracy −0.5 pt (drop ≤ 1 pt), agreement 98.5%, \
coverage 90.0%, selective risk 4.0%, ×2.0 faster, ×4.0 smaller
"""
from __future__ import annotations

import math
from typing import Any

#: the most flips (share of test inputs whose correctness changed) a replacement may have
MAX_FLIPS = 0.02
#: the largest accuracy drop (baseline − compressed, as a fraction) a replacement may have
MAX_ACCURACY_DROP = 0.01
#: selectors whose ``target`` bounds the selective risk, and those that certify a guarantee
RISK_SELECTORS = ("risk", "risk_guarantee")
GUARANTEE_SELECTORS = ("risk_guarantee", "agreement_guarantee")


def _num(v: Any) -> float | None:
    if isinstance(v, bool) or not isinstance(v, (int, float)):
        return None
    return None if math.isnan(v) else float(v)


def _pct(v: float) -> str:
    """A fraction as a percentage with the digits it needs: 0.0333 -> 3.3%, 0.0004 -> 0.04%."""
    p = 100 * v
    return f"{p:.1f}%" if abs(p) >= 0.1 or p == 0 else f"{p:.2g}%"


def _tol(v: float) -> str:
    return f"{100 * v:g}"


def _ratio(v: float, more: str, less: str) -> str:
    return f"×{v:.1f} {more}" if v >= 1 else f"×{1 / v:.1f} {less}"


def verdict(results: dict[str, Any], max_flips: float = MAX_FLIPS,
            max_accuracy_drop: float = MAX_ACCURACY_DROP) -> str:
    """The verdict line of one run's flat results (see the module docstring for the rule)."""
    r = results
    fails, unknown, parts = [], [], []

    flips = _num(r.get("compressed.flips"))
    if flips is None:
        unknown.append("flips")
    else:
        ok = flips <= max_flips
        parts.append(f"flips {_pct(flips)} ({'≤' if ok else '>'} {_tol(max_flips)}%)")
        if not ok:
            fails.append(f"flips {_pct(flips)} > {_tol(max_flips)}%")

    b_acc, c_acc = _num(r.get("baseline.accuracy")), _num(r.get("compressed.accuracy"))
    if b_acc is None or c_acc is None:
        unknown.append("accuracy")
    else:
        delta = c_acc - b_acc
        ok = -delta <= max_accuracy_drop + 1e-12
        parts.append(f"accuracy {100 * delta:+.1f} pt (drop {'≤' if ok else '>'} {_tol(max_accuracy_drop)} pt)"
                     .replace("+-", "−").replace("-", "−"))
        if not ok:
            fails.append(f"accuracy drop {100 * -delta:.1f} pt > {_tol(max_accuracy_drop)} pt")

    agreement = _num(r.get("compressed.agreement"))
    if agreement is not None:
        parts.append(f"agreement {_pct(agreement)}")

    selector = r.get("config.selector")
    target = _num(r.get("config.selector.target"))
    coverage = _num(r.get("compressed.coverage"))
    if coverage is not None:
        parts.append(f"coverage {_pct(coverage)}")
    risk_key, risk_name = (("compressed.selective_disagreement", "selective disagreement")
                           if selector == "agreement_guarantee" else ("compressed.selective_risk", "selective risk"))
    risk = _num(r.get(risk_key))
    if target is not None and selector in RISK_SELECTORS + ("agreement_guarantee",):
        if risk is None:
            unknown.append(risk_name)
        else:
            ok = risk <= target
            parts.append(f"{risk_name} {_pct(risk)} ({'≤' if ok else '>'} target {_pct(target)})")
            if not ok:
                fails.append(f"{risk_name} {_pct(risk)} > target {_pct(target)}")
    elif risk is not None:
        parts.append(f"{risk_name} {_pct(risk)}")

    if selector in GUARANTEE_SELECTORS:
        valid = r.get("compressed.guarantee_valid")
        bound = _num(r.get("compressed.guarantee_bound"))
        delta_ = _num(r.get("config.selector.delta"))
        conf = f" with prob. ≥ {1 - delta_:g}" if delta_ is not None else ""
        if valid is True:
            parts.append("guarantee holds" + (f" (bound {_pct(bound)}{conf})" if bound is not None else conf))
        elif valid is False:
            parts.append("guarantee not certified")
            fails.append("no threshold could be certified (guarantee does not hold)")
        else:
            unknown.append("guarantee")

    speedup = _num(r.get("compressed.speedup"))
    if speedup is not None and speedup > 0:
        parts.append(_ratio(speedup, "faster", "slower"))
    b_size, c_size = _num(r.get("baseline.model_size_bytes")), _num(r.get("compressed.model_size_bytes"))
    if b_size and c_size:
        parts.append(_ratio(b_size / c_size, "smaller", "larger"))

    if r.get("config.deploy.fallback") == "baseline" and _num(r.get("cascade.accuracy")) is not None:
        casc = [f"accuracy {r['cascade.accuracy']:.3f}"]
        for key, label in (("cascade.flips", "flips"), ("cascade.deferral_rate", "defers")):
            v = _num(r.get(key))
            if v is not None:
                casc.append(f"{label} {_pct(v)}")
        cost = _num(r.get("cascade.cost"))
        if cost is not None:
            casc.append(f"cost ×{cost:.2f} of the baseline")
        parts.append("cascade (abstentions go to the baseline): " + ", ".join(casc))

    threshold = _num(r.get("compressed.threshold"))
    at = f" at threshold {threshold:.4g}" if threshold is not None else ""
    if fails:
        head = f"CANNOT REPLACE the baseline{at} ({'; '.join(fails)})"
    elif unknown:
        head = f"NO VERDICT{at} ({', '.join(unknown)} unknown)"
    else:
        head = f"CAN REPLACE the baseline{at}"
    return head + (": " + ", ".join(parts) if parts else "")


__all__ = ["MAX_ACCURACY_DROP", "MAX_FLIPS", "verdict"]
