"""GPU check: every model really runs on CUDA, agrees with its CPU run, and is faster there.

    PYTHONPATH=. python scripts/gpu_check.py            # on a CUDA machine (a few minutes); on a CPU machine: exits 0

For each case it runs the same config with ``device=cuda`` and ``device=cpu`` through the pipeline and checks:
the baseline's parameters sit on CUDA (the compressed model's too, unless its scheme is CPU-only, e.g. torch.ao
static int8, which must then report ``compressed.device=cpu``); ``results.json`` keys ``baseline.device`` /
``compressed.device`` say where each model ran; CPU-vs-GPU accuracy within 0.5 point and at most 1% of answers flip
between the two devices. It prints GPU-vs-CPU speedups (per-sample latency, same batch), then exports a
SelectivePredictor on CUDA, loads it with ``device="cuda"`` and checks its predictions equal the run's.
"""
from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

EMBEDDED = {"progress": False, "plots": False}
CASES = [  # (label, overrides)
    ("small_cnn none", {"quant": {"name": "none"}}),
    ("small_cnn fp16", {"quant": {"name": "fp16"}}),
    ("small_cnn bf16", {"quant": {"name": "bf16"}}),
    ("small_cnn int8_weight_only", {"quant": {"name": "int8_weight_only"}}),
    ("small_cnn int8 (CPU-only scheme)", {"quant": {"name": "int8"}}),
    ("small_cnn mc_dropout head", {"quant": {"name": "bf16"}, "uncertainty": {"name": "mc_dropout", "mode": "head",
                                                                               "samples": 30}}),
    ("small_cnn mc_dropout full", {"quant": {"name": "bf16"}, "uncertainty": {"name": "mc_dropout", "mode": "full",
                                                                               "samples": 10}}),
    ("efficientnet_lite0 bf16 fashion_mnist", {"model": {"name": "efficientnet_lite0"}, "data": {"name": "fashion_mnist"},
                                          "ood": {"name": "none"}, "quant": {"name": "bf16"}, "limit": 500}),
    ("minilm bf16 trec", {"model": {"name": "minilm"}, "data": {"name": "trec"}, "ood": {"name": "none"},
                          "quant": {"name": "bf16"}, "limit": 500}),
]


def config(overrides: dict, device: str) -> dict:
    """The embedded default (conf/config.yaml) with ``overrides`` and ``device``, as the CLI would resolve it."""
    from hydra import compose, initialize_config_dir
    from omegaconf import OmegaConf

    groups = [f"{g}={v['name']}" for g, v in overrides.items() if isinstance(v, dict) and g != "latency"]
    with initialize_config_dir(str(ROOT / "uqcompress" / "conf"), version_base=None):
        cfg = OmegaConf.to_container(compose("config", overrides=groups), resolve=True)
    for g, v in overrides.items():
        cfg[g] = {**cfg[g], **v} if isinstance(v, dict) and isinstance(cfg.get(g), dict) else v
    return {**cfg, **EMBEDDED, "device": device}


def on_cuda(module: torch.nn.Module) -> bool:
    tensors = list(module.parameters()) + list(module.buffers())
    return bool(tensors) and all(t.is_cuda for t in tensors if t.is_floating_point() or t.is_complex())


def check_case(label: str, overrides: dict, failures: list[str]) -> None:
    from uqcompress.pipeline import run_config

    t0 = time.perf_counter()
    try:
        gpu = run_config(config(overrides, "cuda"))
    except Exception as e:  # a data set this machine lacks (e.g. the BIG-bench archive offline) is reported, not fatal
        print(f"  SKIP {label}: {type(e).__name__}: {str(e).splitlines()[0][:160]}")
        return
    t_gpu = time.perf_counter() - t0
    cpu = run_config(config(overrides, "cpu"))
    g, c = gpu.metrics, cpu.metrics
    cpu_only = gpu.compressed.bundle.quant.get("name") in ("int8", "int8_dynamic")
    checks = {
        "baseline params on CUDA": on_cuda(gpu.baseline.bundle.module),
        "compressed params where its scheme runs": (not on_cuda(gpu.compressed.bundle.module)) if cpu_only
        else on_cuda(gpu.compressed.bundle.module),
        "results say baseline.device=cuda": str(g["baseline.device"]).startswith("cuda"),
        "results say where the compressed model ran": (g["compressed.device"] == "cpu") if cpu_only
        else str(g["compressed.device"]).startswith("cuda"),
    }
    for which in ("baseline", "compressed"):
        acc_gap = abs(g[f"{which}.accuracy"] - c[f"{which}.accuracy"])
        ev_g, ev_c = getattr(gpu, which), getattr(cpu, which)
        flips = float((ev_g.probs["test"].argmax(-1) != ev_c.probs["test"].argmax(-1)).double().mean())
        checks[f"{which}: |acc GPU - acc CPU| = {acc_gap:.4f} <= 0.005"] = acc_gap <= 0.005
        checks[f"{which}: answers changed GPU vs CPU = {flips:.4f} <= 0.01"] = flips <= 0.01
    speed = {w: c[f"{w}.latency_ms_per_sample"] / g[f"{w}.latency_ms_per_sample"] for w in ("baseline", "compressed")}
    print(f"  {label}: GPU run {t_gpu:.1f} s; GPU-vs-CPU speedup baseline x{speed['baseline']:.1f}, "
          f"compressed x{speed['compressed']:.1f}; compressed.speedup on GPU {g['compressed.speedup']:.2f}, "
          f"on CPU {c['compressed.speedup']:.2f}")
    for what, ok in checks.items():
        print(f"    {'ok  ' if ok else 'FAIL'} {what}")
        if not ok:
            failures.append(f"{label}: {what}")


def check_deploy(failures: list[str]) -> None:
    from uqcompress.pipeline import run_config
    from uqcompress.predictor import SelectivePredictor

    path = Path(tempfile.mkdtemp()) / "bf16.pt"
    res = run_config({**config({"quant": {"name": "bf16"}}, "cuda"), "deploy": {"export": str(path)}})
    pred = SelectivePredictor.load(path, device="cuda")
    x = res.compressed.outputs["test"]
    from uqcompress.data import load_dataset

    data = load_dataset({"name": "mnist"}, seed=0)["test"]
    labels, conf, accepted = pred.predict(data.x[: len(x)])
    run_labels = res.compressed.probs["test"].argmax(-1).masked_fill(~res.compressed.accept["test"], -1)
    checks = {"loaded predictor on CUDA": pred.device.startswith("cuda") and on_cuda(pred.model),
              "loaded predictor answers like the run": bool(torch.equal(labels, run_labels))}
    print(f"  deploy export + load + predict on {pred.device}: {len(labels)} inputs")
    for what, ok in checks.items():
        print(f"    {'ok  ' if ok else 'FAIL'} {what}")
        if not ok:
            failures.append(f"deploy: {what}")


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--only", nargs="*", help="run only the cases whose label contains one of these words")
    args = p.parse_args(argv)
    if not torch.cuda.is_available():
        print("gpu_check: no CUDA device on this machine (torch.cuda.is_available() is False); nothing to check")
        return 0
    print(f"gpu_check on {torch.cuda.get_device_name(0)}, torch {torch.__version__}")
    failures: list[str] = []
    for label, overrides in CASES:
        if not args.only or any(w in label for w in args.only):
            check_case(label, overrides, failures)
    if not args.only or "deploy" in args.only:
        check_deploy(failures)
    print("PASS" if not failures else f"FAIL ({len(failures)}): " + "; ".join(failures))
    return 0 if not failures else 1


if __name__ == "__main__":
    sys.exit(main())
