"""Benchmark the int8 quantization recipes (``quant.recipe``, issue 26) by the answers they keep.

For each recipe (plain static int8 first) the baseline is quantized on the first ``--n-calib`` rows of the
calibration split (the recipe sees nothing else), then on the first ``--n-test`` rows of the test split we record:
changed answers (share of test inputs whose compressed answer differs from the baseline's: ``all_flips``) with a
95% Wilson interval, flips (C->I + I->C, the project's ``flips``), mean
KL(baseline || compressed) (and on the calibration rows: what ``distill`` minimises), accuracy, size (state_dict
bytes / fp32) and the time to quantize (wall, one cold run: the compressed-model cache is a fresh temporary folder; the trained baseline comes from the usual cache).

Usage:
    PYTHONPATH=. python scripts/bench_recipes.py                                 # small_cnn on MNIST
    PYTHONPATH=. python scripts/bench_recipes.py --n-calib 256 --n-test 2000 --distill-steps 100 --distill-lr 1e-6
    PYTHONPATH=. python scripts/bench_recipes.py --model minilm --data trec --n-calib 512 --n-test 0  # all test rows
    PYTHONPATH=. python scripts/bench_recipes.py --model minilm --data trec --only peg peg@onednn
    PYTHONPATH=. python scripts/bench_recipes.py --model efficientnet_lite0 --data fashion_mnist --n-calib 512 \
        --n-test 0 --calib-batch-size 32 --distill-steps 60 --distill-lr 1e-5 --distill-batch-size 16 \
        --only "(plain int8)" "(plain int8)@onednn" distill distill@onednn

``--model minilm`` runs per layer (FX cannot trace it), so its recipes are those of ``quant.mode=per_layer``; a name
``recipe@backend`` runs it with ``quant.backend=backend`` (onednn: full 8-bit activation range; the x86 default keeps
7 bits, ``reduce_range``). ``--n-test 0``: every test row.
"""
from __future__ import annotations

import argparse
import logging
import sys
import tempfile
import time
import warnings
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from uqcompress.compress import CompressContext, compress  # noqa: E402
from uqcompress.compress.recipes import kl_to_baseline  # noqa: E402
from uqcompress.data import load_dataset  # noqa: E402
from uqcompress.measure import state_dict_bytes  # noqa: E402
from uqcompress.models import BuildContext, build_model  # noqa: E402
from uqcompress.runner import Runner  # noqa: E402


def recipes(args) -> dict[str, dict]:
    distill = {"steps": args.distill_steps, "lr": args.distill_lr, "batch_size": args.distill_batch_size}
    fx = {
        "(plain int8)": {},
        "minmax": {"recipe": ["minmax"]},
        "bias_correction": {"recipe": ["bias_correction"]},
        "distill": {"recipe": ["distill"], "distill": distill},
        "distill+bias_correction": {"recipe": ["distill", "bias_correction"], "distill": distill},
        "(plain int8)@onednn": {"backend": "onednn"},
        "distill@onednn": {"recipe": ["distill"], "distill": distill, "backend": "onednn"},
    }
    peg = {"groups": args.peg_groups}
    per_layer = {
        "(plain int8)": {},
        "(plain int8)@onednn": {"backend": "onednn"},
        "bias_correction": {"recipe": ["bias_correction"]},
        "peg": {"recipe": ["peg"], "peg": peg},
        "peg@onednn": {"recipe": ["peg"], "peg": peg, "backend": "onednn"},
        "peg+bias_correction@onednn": {"recipe": ["peg", "bias_correction"], "peg": peg, "backend": "onednn"},
    }
    out = per_layer if args.model == "minilm" else fx
    if args.only:
        unknown = sorted(set(args.only) - set(out))
        if unknown:
            raise SystemExit(f"--only: unknown recipe(s) {unknown}; known: {', '.join(out)}")
        out = {k: v for k, v in out.items() if k in args.only}
    return out


def wilson(k: int, n: int) -> tuple[float, float]:
    from scipy.stats import binomtest

    ci = binomtest(k, n).proportion_ci(0.95, method="wilson")
    return float(ci.low), float(ci.high)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--n-calib", type=int, default=256)
    p.add_argument("--n-test", type=int, default=2000)
    p.add_argument("--distill-steps", type=int, default=100)
    p.add_argument("--distill-lr", type=float, default=1e-6)
    p.add_argument("--distill-batch-size", type=int, default=32)
    p.add_argument("--calib-batch-size", type=int, default=64, help="batch size of the calibration passes")
    p.add_argument("--warm", action="store_true",
                   help="use the usual cache for the compressed models too (quantize s is then a cache load)")
    p.add_argument("--fit-limit", type=int, default=None, help="train the baseline on this many fit rows")
    p.add_argument("--epochs", type=int, default=None, help="baseline training epochs (model.epochs)")
    p.add_argument("--model", default="small_cnn", help="a model config name (uqcompress/conf/model)")
    p.add_argument("--data", default="mnist", help="a data config name (uqcompress/conf/data)")
    p.add_argument("--peg-groups", type=int, default=8, help="quant.peg.groups")
    p.add_argument("--only", nargs="*", help="run only these recipes (names as printed)")
    args = p.parse_args(argv)
    logging.basicConfig(level=logging.WARNING)
    warnings.simplefilter("ignore")
    from omegaconf import OmegaConf

    torch.set_num_threads(1)  # a shared machine: one core
    data = load_dataset({"name": args.data}, 0)
    if args.fit_limit:
        from uqcompress.data.base import Split

        fit = data["fit"]
        data.splits["fit"] = Split(fit.x[: args.fit_limit], fit.y[: args.fit_limit])
    cfg = OmegaConf.to_container(OmegaConf.load(ROOT / f"uqcompress/conf/model/{args.model}.yaml"))
    if args.epochs:
        cfg["epochs"] = args.epochs
    base = build_model(cfg, data, BuildContext(seed=0, progress=False))
    calib = data["calibration"].x[: args.n_calib]
    n_test = args.n_test or len(data["test"].y)
    x, y = data["test"].x[:n_test], data["test"].y[:n_test]
    runner = Runner(progress=False, batch_size=4 if args.model.startswith("efficientnet") else 256)
    ref = runner.logits(base, x)
    ref_calib = runner.logits(base, calib)
    base_acc = float((ref.argmax(-1) == y).double().mean())
    base_size = state_dict_bytes(base.module)
    from uqcompress.cache import set_cache_dir

    print(f"{args.model} on {args.data}: {len(calib)} calibration rows, {len(y)} test rows, "
          f"baseline accuracy {base_acc:.4f}")
    print(f"{'recipe':28s} {'changed':>7s} {'95% interval':>17s} {'flips':>6s} {'KL':>9s} {'calib KL':>9s} "
          f"{'acc':>7s} {'size×':>6s} "
          f"{'quantize s':>10s} {'recipe s':>8s} {'passes':>6s}")
    with tempfile.TemporaryDirectory() as tmp:
        for name, opts in recipes(args).items():
            if not args.warm:
                set_cache_dir(Path(tmp) / name)  # cold: every recipe quantizes from scratch
            t0 = time.perf_counter()
            torch.backends.quantized.engine = opts.get("backend", "x86")
            comp = compress(base, {"name": "int8", "calibration_samples": args.n_calib, **opts}, calib,
                            CompressContext(progress=False, batch_size=args.calib_batch_size))
            secs = time.perf_counter() - t0
            out = runner.logits(comp, x)
            flips = int((out.argmax(-1) != ref.argmax(-1)).sum())
            right_b, right_c = ref.argmax(-1) == y, out.argmax(-1) == y
            dutta = float((right_b != right_c).double().mean())  # C->I + I->C: the project's `flips`
            lo, hi = wilson(flips, len(y))
            kl = float(kl_to_baseline(ref, out))
            kl_calib = float(kl_to_baseline(ref_calib, runner.logits(comp, calib)))  # what distill minimises
            acc = float((out.argmax(-1) == y).double().mean())
            size = state_dict_bytes(comp.module) / base_size
            print(f"{name:28s} {flips / len(y):7.4f} [{lo:.4f}, {hi:.4f}] {dutta:6.4f} {kl:9.2e} {kl_calib:9.2e} "
                  f"{acc:7.4f} "
                  f"{size:6.3f} "
                  f"{secs:10.2f} {comp.info.get('recipe_seconds', 0):8.2f} {comp.info.get('recipe_passes', 0):6.1f}",
                  flush=True)
    set_cache_dir(None)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
