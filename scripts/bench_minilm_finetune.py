"""Accuracy and cost of ``model=minilm`` for ``finetune_layers`` = 0, 1, 2 (head only vs LP-FT of the top layers).

Each setting is built cold in its own cache folder (embedding + training included) and scored on the test split.
Prints wall and CPU seconds (CPU seconds are the fairer number on a shared machine) and ratios to head-only.

    PYTHONPATH=. python scripts/bench_minilm_finetune.py --data trec --layers 0 1 2 --epochs 2
"""
from __future__ import annotations

import argparse
import logging
import tempfile
import time

from uqcompress.cache import set_cache_dir
from uqcompress.data import load_dataset
from uqcompress.runner import Runner
from uqcompress.models import BuildContext, build_model


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", default="trec")
    ap.add_argument("--layers", type=int, nargs="+", default=[0, 1, 2])
    ap.add_argument("--epochs", type=int, default=2)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    logging.basicConfig(level=logging.WARNING)
    data = load_dataset({"name": args.data}, args.seed)
    rows = []
    for n in args.layers:
        with tempfile.TemporaryDirectory() as cache:
            set_cache_dir(cache)
            w, c = time.perf_counter(), time.process_time()
            model = build_model({"name": "minilm", "finetune_layers": n, "epochs": args.epochs}, data,
                                BuildContext(args.seed, "cpu", False))
            build = (time.perf_counter() - w, time.process_time() - c)
            w, c = time.perf_counter(), time.process_time()
            logits = Runner(progress=False).logits(model, data["test"].x)
            infer = (time.perf_counter() - w, time.process_time() - c)
        acc = float((logits.argmax(1) == data["test"].y).float().mean())
        rows.append((n, acc, build, infer))
        print(f"finetune_layers={n}: test accuracy {acc:.4f} | build wall {build[0]:.1f}s cpu {build[1]:.1f}s | "
              f"test inference ({len(data['test'])}) wall {infer[0]:.1f}s cpu {infer[1]:.1f}s", flush=True)
    base = rows[0]
    for n, acc, build, _ in rows[1:]:
        print(f"finetune_layers={n} vs {base[0]}: accuracy {acc - base[1]:+.4f}, build CPU time x{build[1] / base[2][1]:.2f}")


if __name__ == "__main__":
    main()
