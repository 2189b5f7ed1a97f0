"""Resplit study (issue 17): do `risk_guarantee` and `agreement_guarantee` keep their promise on real predictions,
and what coverage does the promise cost compared with the empirical `risk` selector?

For each model: one pipeline run (cached) gives the real predictions of the calibration and test splits; they are
pooled and resplit R times (default 1,000) into calibration/test halves. On every calibration half each selector picks
its threshold; on the matching test half we record whether the loss rate among accepted inputs exceeded the target
(a *violation*; loss = error for `risk` / `risk_guarantee`, disagreement with the baseline for `agreement_guarantee`
and its empirical counterpart) and the test coverage. The guarantee passes when its violation frequency is
<= delta + 2 Monte-Carlo standard errors, the s.e. taken at the boundary: sqrt(delta (1 - delta) / R).

How cases without a violation are counted: when no threshold is certified the selector abstains on everything, which
answers nothing and so makes no wrong answer (risk 0 by convention): no violation, test coverage 0. The same holds
when a threshold accepts no test input. The table reports how often no threshold was certified.

Note: a violation here is measured on a test half as large as the calibration half, so it includes the test half's
own sampling noise on top of what the guarantee covers (the population rate among answered inputs).

The resplits are vectorised: the pooled predictions are sorted once, every draw is a row of a boolean matrix, and the
selectors' own search (:func:`uqcompress.selection.bounds.sgr_search`) runs on all rows at once; a test checks that
each row equals fitting the registered selector on that calibration half.

Second table: the cascade (defer to the baseline where the compressed model is unsure) on the test split, per scorer:
the smallest deferral rate whose cascade agreement with the baseline is >= 99% (chosen on the test split itself, an
oracle), its accuracy and cost (measured latencies, one thread), and the deferral rate `agreement_guarantee` (target 0.01) picks
on the calibration split, with the agreement it reaches on the test split (it certifies >= 0.99 w.p. 1 - delta:
at most 1% of the answered inputs differ, so at most 1% of all).

Usage:
    PYTHONPATH=. .venv/bin/python scripts/validate_guarantees.py                     # all three models
    PYTHONPATH=. .venv/bin/python scripts/validate_guarantees.py --models default --resplits 2000
EfficientNet-Lite0 on CIFAR-10 needs the bigbench source archive (downloaded into the cache on first use, or
$UQCOMPRESS_BIGBENCH_ARCHIVE).
"""
from __future__ import annotations

import argparse
import math
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from uqcompress._compat import install_shim  # noqa: E402

install_shim()

from uqcompress import metrics as M  # noqa: E402
from uqcompress.cache import cached, fingerprint  # noqa: E402
from uqcompress.selection.bounds import check_target_delta, sgr_search  # noqa: E402


@dataclass(frozen=True)
class Study:
    label: str
    overrides: tuple[str, ...]
    risk_targets: tuple[float, ...]
    agreement_targets: tuple[float, ...]


STUDIES = {
    "default": Study("small_cnn int8, MNIST", (), (0.002, 0.005, 0.01), (0.002, 0.005, 0.01)),
    "efficientnet": Study("EfficientNet-Lite0 int8, CIFAR-10", ("model=efficientnet_lite0", "data=cifar10", "quant=int8"),
                          (0.05, 0.08, 0.10), (0.01, 0.02, 0.05)),
    "minilm": Study("MiniLM int8, TREC", ("model=minilm", "data=trec", "quant=int8"), (0.05, 0.10, 0.15),
                    (0.02, 0.05, 0.10)),
}
SCORERS = ("msp", "entropy", "margin", "energy")


# ---- the pooled predictions ----------------------------------------------------------------------------------------
def compose(overrides: tuple[str, ...]) -> dict:
    """The CLI's config for ``overrides`` (no OOD set: the study needs calibration and test only)."""
    from hydra import compose as hydra_compose, initialize_config_dir
    from omegaconf import OmegaConf

    with initialize_config_dir(config_dir=str(ROOT / "uqcompress" / "conf"), version_base=None):
        cfg = hydra_compose("config", overrides=[*overrides, "ood=none", "progress=false", "plots=false"])
    return OmegaConf.to_container(cfg, resolve=True)


def pooled_predictions(study: Study) -> dict:
    """Logits of both models, labels and split of calibration + test, and latencies (cached).

    Latencies: ms per test sample of baseline and compressed model on one CPU thread, timed *interleaved*, median of
    15 rounds (:meth:`uqcompress.runner.Runner.latency`): a per-core cost that load from other processes distorts
    least (on a loaded 2-core machine, 2 threads made EfficientNet-Lite0 2.2x (fp32) and 4.1x (int8) slower than one).
    """
    cfg = compose(study.overrides)
    key = fingerprint("guarantee-study-v3", {k: v for k, v in cfg.items() if k not in ("progress", "plots")})

    def run() -> dict:
        from uqcompress.pipeline import load_data, run_config
        from uqcompress.runner import Runner, resolve_device

        res = run_config(cfg)
        lat = {**cfg["latency"], **dict(cfg["model"].get("latency") or {})}
        threads = torch.get_num_threads()
        torch.set_num_threads(1)
        try:
            runner = Runner(resolve_device(cfg["device"]), lat["batch_size"], False)
            timed = runner.latency({"base": res.baseline.bundle, "comp": res.compressed.bundle},
                                   load_data(cfg)[0]["test"].x, batch_size=lat["batch_size"], repeats=15, warmup=3)
            ms = {k: v["latency_ms_per_sample"] for k, v in timed.items()}
        finally:
            torch.set_num_threads(threads)
        out = {}
        for who, ev in (("base", res.baseline), ("comp", res.compressed)):
            out[f"{who}_logits"] = torch.cat([ev.outputs["calibration"].logits, ev.outputs["test"].logits])
            out[f"{who}_latency_ms"] = ms[who]
        out["labels"] = torch.cat([res.baseline.outputs["calibration"].labels, res.baseline.outputs["test"].labels])
        n_cal = len(res.baseline.outputs["calibration"])
        out["is_test"] = torch.arange(len(out["labels"])) >= n_cal
        return out

    return cached("guarantee_study", key, run)


# ---- vectorised resplits -------------------------------------------------------------------------------------------
class Resplits:
    """R calibration/test halves of a pooled set, sorted once by confidence, with per-draw cumulative counts.

    Candidate thresholds are the distinct pooled confidences (groups); a draw's own cuts are the groups that hold at
    least one of its calibration samples, compacted to the front of each row (what the selectors see).
    """

    def __init__(self, confidence: np.ndarray, masks: np.ndarray) -> None:
        order = np.argsort(-confidence, kind="stable")
        c = confidence[order]
        last = np.ones(c.size, dtype=bool)
        last[:-1] = c[1:] != c[:-1]
        self.order, self.ends = order, np.flatnonzero(last)
        self.values = c[self.ends]                                     # (G,) descending
        self.cal = masks[:, order]                                     # (R, N)
        self.cum_cal = np.cumsum(self.cal, axis=1, dtype=np.int64)[:, self.ends]          # (R, G)
        self.cum_all = self.ends.astype(np.int64) + 1                                    # (G,)
        has = np.diff(self.cum_cal, axis=1, prepend=0) > 0
        self.perm = np.argsort(~has, axis=1, kind="stable")            # the draw's own cuts first, in order
        self.n_cuts = has.sum(axis=1)
        self.cal_accepted = np.take_along_axis(self.cum_cal, self.perm, axis=1)
        self.n_test = int(masks.shape[1] - masks[0].sum())

    def losses(self, loss: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Cumulative losses at each group: pooled (G,) and calibration (R, G)."""
        lo = loss[self.order]
        pooled = np.cumsum(lo, dtype=np.int64)[self.ends]
        cal = np.cumsum(self.cal & lo, axis=1, dtype=np.int64)[:, self.ends]
        return pooled, cal

    def fit_empirical(self, cal_losses: np.ndarray, target: float) -> np.ndarray:
        """`risk`: the largest-coverage cut whose calibration loss rate <= target (as ``max_coverage_threshold``).
        Returns the pooled group index per draw, -1 = abstain on everything."""
        acc = self.cal_accepted
        los = np.take_along_axis(cal_losses, self.perm, axis=1)
        with np.errstate(invalid="ignore", divide="ignore"):     # padding past a draw's own cuts may hold 0 / 0
            ok = (los / acc <= target + 1e-12) & (np.arange(acc.shape[1]) < self.n_cuts[:, None])
        j = acc.shape[1] - 1 - np.argmax(ok[:, ::-1], axis=1)
        return np.where(ok.any(axis=1), np.take_along_axis(self.perm, j[:, None], 1)[:, 0], -1)

    def fit_sgr(self, cal_losses: np.ndarray, target: float, delta: float) -> np.ndarray:
        """`risk_guarantee` / `agreement_guarantee` (SGR) on every draw; pooled group index, -1 = none certified."""
        los = np.take_along_axis(cal_losses, self.perm, axis=1)
        chosen, _, _ = sgr_search(self.cal_accepted, los, self.n_cuts, target, delta)
        j = np.maximum(chosen - 1, 0)
        return np.where(chosen > 0, np.take_along_axis(self.perm, j[:, None], 1)[:, 0], -1)

    def fit_fixed_sequence(self, cal_losses: np.ndarray, target: float, delta: float) -> np.ndarray:
        """For comparison only (not shipped): Learn-then-Test with fixed-sequence testing at level delta (Angelopoulos
        et al. 2021). Cuts from the most confident down, p = P(Binomial(n, target) <= losses), starting at the first
        cut with n >= ln(delta) / ln(1 - target) (before it no labels could reject); the last cut before the first
        p > delta wins. Pooled group index per draw, -1 = none."""
        from scipy.stats import binom

        acc = self.cal_accepted
        los = np.take_along_axis(cal_losses, self.perm, axis=1)
        n_min = math.ceil(math.log(delta) / math.log1p(-target)) if target > 0 else math.inf
        inside = np.arange(acc.shape[1]) < self.n_cuts[:, None]
        startable = (acc >= n_min) & inside
        fail = (binom.cdf(los, acc, target) > delta) & startable
        first_fail = np.where(fail.any(axis=1), np.argmax(fail, axis=1), self.n_cuts)
        last = np.maximum(first_fail - 1, 0)
        ok = (first_fail > 0) & np.take_along_axis(startable, last[:, None], 1)[:, 0]
        return np.where(ok, np.take_along_axis(self.perm, last[:, None], 1)[:, 0], -1)

    def threshold(self, group: np.ndarray) -> np.ndarray:
        return np.where(group >= 0, self.values[np.maximum(group, 0)], np.inf)

    def test_outcome(self, group: np.ndarray, pooled_losses: np.ndarray, cal_losses: np.ndarray, target: float):
        """(violated, test coverage, test loss rate or NaN) per draw for the chosen groups."""
        rows = np.arange(len(group))
        g = np.maximum(group, 0)
        accepted = np.where(group >= 0, self.cum_all[g] - self.cum_cal[rows, g], 0)
        lost = np.where(group >= 0, pooled_losses[g] - cal_losses[rows, g], 0)
        with np.errstate(invalid="ignore", divide="ignore"):
            rate = np.where(accepted > 0, lost / np.maximum(accepted, 1), np.nan)
        violated = np.nan_to_num(rate, nan=0.0) > target          # nothing answered: no wrong answer
        return violated, accepted / self.n_test, rate


def resplit_masks(n: int, resplits: int, seed: int) -> np.ndarray:
    """(R, n) bool: True = calibration; each row holds floor(n / 2) calibration samples, uniformly at random."""
    rng = np.random.default_rng(seed)
    ranks = np.argsort(rng.random((resplits, n)), axis=1)
    masks = np.zeros((resplits, n), dtype=bool)
    np.put_along_axis(masks, ranks[:, : n // 2], True, axis=1)
    return masks


def study_rows(confidence: np.ndarray, errors: np.ndarray, disagreements: np.ndarray, risk_targets, agreement_targets,
               resplits: int = 1000, delta: float = 0.1, seed: int = 0, compare_ltt: bool = False) -> list[dict]:
    """One row per (selector, target): violation frequency, its s.e., the bound, no-certificate share, coverage.

    ``compare_ltt`` adds a row for Learn-then-Test fixed-sequence testing (:meth:`Resplits.fit_fixed_sequence`), the
    alternative to SGR that the selectors do not use; it is held to the same bound."""
    check_target_delta(0.0, delta, "validate_guarantees")
    rs = Resplits(np.asarray(confidence, np.float64), resplit_masks(len(confidence), resplits, seed))
    bound = delta + 2 * math.sqrt(delta * (1 - delta) / resplits)
    rows = []
    for loss_name, loss, targets, names in (("error", errors, risk_targets, ("risk", "risk_guarantee")),
                                            ("disagreement", disagreements, agreement_targets,
                                             ("risk on disagreement", "agreement_guarantee"))):
        pooled, cal = rs.losses(np.asarray(loss, bool))
        for target in targets:
            empirical = rs.fit_empirical(cal, target)
            v_emp, cov_emp, _ = rs.test_outcome(empirical, pooled, cal, target)
            guaranteed = rs.fit_sgr(cal, target, delta)
            v, cov, _ = rs.test_outcome(guaranteed, pooled, cal, target)
            fits = [(names[0], v_emp, cov_emp, empirical, False), (names[1], v, cov, guaranteed, True)]
            if compare_ltt:
                ltt = rs.fit_fixed_sequence(cal, target, delta)
                fits.append(("LTT fixed-sequence (not shipped)", *rs.test_outcome(ltt, pooled, cal, target)[:2], ltt,
                             True))
            for name, vio, c, grp, is_g in fits:
                f = float(vio.mean())
                rows.append({
                    "selector": name, "loss": loss_name, "target": target, "guaranteed": is_g,
                    "violation": f, "se": math.sqrt(f * (1 - f) / resplits), "bound": bound if is_g else math.nan,
                    "pass": (f <= bound) if is_g else None, "no_threshold": float((grp < 0).mean()),
                    "coverage": float(c.mean()), "coverage_given_up": float(cov_emp.mean() - c.mean()) if is_g else 0.0,
                    "groups": grp,
                })
    return rows


# ---- the cascade on the test split ---------------------------------------------------------------------------------
def cascade_rows(pool: dict, delta: float = 0.1, agreement: float = 0.99) -> list[dict]:
    from uqcompress.selection import build_selector
    from uqcompress.uncertainty import build_scorer
    from uqcompress.uncertainty.base import Outputs

    test = pool["is_test"].numpy()
    base_pred = pool["base_logits"].argmax(-1).numpy()
    comp_pred = pool["comp_logits"].argmax(-1).numpy()
    y = pool["labels"].numpy()
    rows = []
    for name in SCORERS:
        conf = build_scorer({"name": name}).score(Outputs(pool["comp_logits"])).numpy()
        oracle = M.deferral_for_agreement(base_pred[test], comp_pred[test], y[test], conf[test], agreement)
        sel = build_selector({"name": "agreement_guarantee", "target": round(1 - agreement, 10), "delta": delta})
        cal = ~test
        sel.fit(torch.from_numpy(conf[cal]), torch.from_numpy(comp_pred[cal] == base_pred[cal]),
                Outputs(pool["comp_logits"][cal], reference=torch.from_numpy(base_pred[cal])))
        accepted = conf[test] >= sel.threshold
        agree_test = float(np.mean(np.where(accepted, comp_pred[test], base_pred[test]) == base_pred[test]))
        t_c, t_b = pool["comp_latency_ms"], pool["base_latency_ms"]
        rows.append({"scorer": name, "deferral": oracle["deferral_rate"], "accuracy": oracle["accuracy"],
                     "cost": M.cascade_cost(oracle["deferral_rate"], t_c, t_b),
                     "certified_deferral": 1 - float(accepted.mean()), "certified_agreement": agree_test,
                     "certified_cost": M.cascade_cost(1 - float(accepted.mean()), t_c, t_b)})
    return rows


# ---- printing ------------------------------------------------------------------------------------------------------
def format_study(label: str, rows: list[dict], resplits: int, delta: float) -> list[str]:
    lines = ["| model | selector | target | violation ± s.e. | bound δ+2se | no threshold | test coverage "
             "| coverage given up |", "|---|---|---|---|---|---|---|---|"]
    for i, r in enumerate(rows):
        bound = f"{r['bound']:.3f} {'PASS' if r['pass'] else 'FAIL'}" if r["guaranteed"] else ""
        given = f"{r['coverage_given_up']:+.3f}" if r["guaranteed"] else ""
        lines.append(f"| {label if i == 0 else ''} | {r['selector']} | {r['target']:g} | {r['violation']:.3f} ± {r['se']:.3f} | {bound} | "
                     f"{r['no_threshold']:.1%} | {r['coverage']:.3f} | {given} |")
    return lines


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--models", default=",".join(STUDIES), help=f"comma-separated: {', '.join(STUDIES)}")
    p.add_argument("--resplits", type=int, default=1000)
    p.add_argument("--delta", type=float, default=0.1)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--compare-ltt", action="store_true",
                   help="also run Learn-then-Test fixed-sequence testing at level delta (the rejected alternative)")
    args = p.parse_args(argv)
    names = [m.strip() for m in args.models.split(",") if m.strip()]
    unknown = sorted(set(names) - set(STUDIES))
    if unknown:
        p.error(f"unknown model(s) {unknown}; choose from {', '.join(STUDIES)}")
    ok = True
    out, cascade_out = [], []
    for name in names:
        study = STUDIES[name]
        t0 = time.perf_counter()
        pool = pooled_predictions(study)
        t1 = time.perf_counter()
        comp = pool["comp_logits"]
        conf = torch.softmax(comp.double(), -1).max(-1).values.numpy()          # msp, the default scorer
        comp_pred, base_pred = comp.argmax(-1).numpy(), pool["base_logits"].argmax(-1).numpy()
        errors = comp_pred != pool["labels"].numpy()
        rows = study_rows(conf, errors, comp_pred != base_pred, study.risk_targets, study.agreement_targets,
                          args.resplits, args.delta, args.seed, args.compare_ltt)
        t2 = time.perf_counter()
        ok &= all(r["pass"] for r in rows if r["guaranteed"] and "not shipped" not in r["selector"])
        n = len(conf)
        out += format_study(f"{study.label} (pool {n}: error {errors.mean():.3f}, disagreement "
                            f"{(comp_pred != base_pred).mean():.3f})", rows, args.resplits, args.delta) + [""]
        print(f"{name}: predictions {t1 - t0:.1f} s, {args.resplits} resplits {t2 - t1:.1f} s", file=sys.stderr)
        for r in cascade_rows(pool, args.delta):
            cascade_out.append(f"| {study.label} | {r['scorer']} | {r['deferral']:.3f} | {r['accuracy']:.4f} | "
                               f"{r['cost']:.3f} | {r['certified_deferral']:.3f} | {r['certified_agreement']:.4f} | "
                               f"{r['certified_cost']:.3f} |")
    print(f"Resplit study: {args.resplits} calibration/test halves, delta = {args.delta}, msp scores; violation = "
          "test loss rate among accepted > target (error for risk*, disagreement with the baseline for agreement*).\n")
    print("\n".join(out))
    print("Cascade on the test split (compressed model answers where it accepts, baseline elsewhere): smallest deferral "
          "for >= 99% agreement with the baseline (oracle, chosen on the test split), and what agreement_guarantee "
          f"(target 0.01, delta {args.delta}) fitted on the calibration split defers and reaches on the test split.\n")
    print("| model | scorer | deferral for 99% agreement | cascade accuracy | cost vs baseline | certified deferral "
          "| test agreement | cost |")
    print("|---|---|---|---|---|---|---|---|")
    print("\n".join(cascade_out))
    print(f"\n{'PASS' if ok else 'FAIL'}: every guaranteed selector's violation frequency <= delta + 2 s.e.")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
