"""What compression forgets: two small LMs x compression schemes on knowledge probes and MMLU (Namburi et al. 2023).

Runs ``model in {smollm2, gemma3_270m}`` x ``data in {knowledge, mmlu}`` x schemes {none, int8_dynamic,
int8_weight_only, int4_weight_only, prune_global_l1 at 30% / 50%, drop_layers} through the pipeline (the baseline's
option log-likelihoods are cached, so each scheme costs one pass of its compressed copy), appending each run's flat
results to ``OUT/runs.jsonl`` as it finishes (a run that fails is recorded with its error and the study goes on).
Then ``--report`` writes ``OUT/table.md`` (per model, data and scheme: accuracy with its 95% bootstrap interval,
flips, KL; per relation: knowledge lost = baseline accuracy - compressed accuracy) and ``docs/knowledge_study.png``
(knowledge lost per relation against the scheme's weight sparsity / bits).

    nice -n 10 python scripts/knowledge_study.py run --out study --knowledge 210 --mmlu 90
    python scripts/knowledge_study.py report --out study --png docs/knowledge_study.png

Both models' baselines are GGUF files dequantized to float32 (SmolLM2 from Q4_1, Gemma 3 from Q4_K_M): every
scheme is applied on top of weights that already carry 4-bit error.
"""
from __future__ import annotations

import argparse
import json
import math
import sys
import time
import traceback
from pathlib import Path

SCHEMES = {  # label -> quant config
    "none": {"name": "none"},
    "int8_dynamic": {"name": "int8_dynamic"},
    "int8_weight_only": {"name": "int8_weight_only"},
    "int4_weight_only": {"name": "int4_weight_only"},
    "prune_l1_30": {"name": "prune_global_l1", "amount": 0.3},
    "prune_l1_50": {"name": "prune_global_l1", "amount": 0.5},
    "drop_layers_2": {"name": "drop_layers", "n": 2},
}
MODELS = ("smollm2", "gemma3_270m")
GROUP = {"knowledge": "relation", "mmlu": "subject"}


def _cfg(model: str, data: str, scheme: str, limit: int, seed: int, threads: int | None) -> dict:
    """A run config as the Hydra app would resolve it (conf/model/<model>.yaml, conf/data/<data>.yaml)."""
    import yaml

    root = Path(__file__).resolve().parents[1] / "conf"
    m = yaml.safe_load((root / "model" / f"{model}.yaml").read_text())
    d = {k: v for k, v in yaml.safe_load((root / "data" / f"{data}.yaml").read_text()).items() if k != "defaults"}
    m["latency"] = {"batch_size": 1, "repeats": 1, "warmup": 1}  # latency is not what this study measures
    d.update({"limit": limit, "splits": {"calibration": 0.3, "test": 0.7}})
    q = {k: v for k, v in yaml.safe_load((root / "quant" / f"{SCHEMES[scheme]['name']}.yaml").read_text()).items()
         if k != "defaults"}
    q.update(SCHEMES[scheme])
    return {"model": m, "data": d, "quant": q, "ood": {"name": "none"}, "seed": seed,
            "progress": False, "threads": threads, "bootstrap": 1000}


def run(out: Path, limits: dict[str, int], models: list[str], schemes: list[str], seed: int,
        threads: int | None) -> None:
    from uqcompress.pipeline import run_config

    out.mkdir(parents=True, exist_ok=True)
    log = out / "runs.jsonl"
    done = set()
    if log.is_file():
        for line in log.read_text().splitlines():
            r = json.loads(line)
            if not r.get("error"):
                done.add((r["study.model"], r["study.data"], r["study.scheme"], r["study.limit"]))
    # knowledge first (the question of the study), then MMLU; per model every scheme
    for data in ("knowledge", "mmlu"):
        if not limits.get(data):
            continue
        for model in models:
            for scheme in schemes:
                key = (model, data, scheme, limits[data])
                if key in done:
                    continue
                t0 = time.time()
                row = {"study.model": model, "study.data": data, "study.scheme": scheme, "study.limit": limits[data]}
                try:
                    res = run_config(_cfg(model, data, scheme, limits[data], seed, threads))
                    row.update({k: v for k, v in res.metrics.items() if isinstance(v, (int, float, str, bool))
                                or v is None})
                except Exception as e:  # one scheme failing must not lose the others
                    row["error"] = f"{type(e).__name__}: {e}"
                    traceback.print_exc()
                row["study.seconds"] = round(time.time() - t0, 1)
                with open(log, "a") as f:
                    f.write(json.dumps(row, default=lambda v: None if isinstance(v, float) and math.isnan(v)
                                       else str(v)) + "\n")
                print(f"{model:12s} {data:9s} {scheme:16s} {row['study.seconds']:7.1f}s "
                      + (row.get("error", "") or f"acc {row.get('baseline.accuracy'):.3f} -> "
                         f"{row.get('compressed.accuracy'):.3f} flips {row.get('compressed.flips'):.3f}"), flush=True)


def _f(v, d: int = 3) -> str:
    try:
        v = float(v)
    except (TypeError, ValueError):
        return "—"
    return "—" if math.isnan(v) else f"{v:.{d}f}"


def _ci(r: dict, key: str) -> str:
    lo, hi = r.get(key + "_ci_low"), r.get(key + "_ci_high")
    return f"{_f(r.get(key))} [{_f(lo)}, {_f(hi)}]" if lo is not None else _f(r.get(key))


def _lost(r: dict, prefix: str) -> float:
    """Baseline minus compressed accuracy under ``prefix`` (NaN when either is missing)."""
    b, c = r.get(prefix + "baseline.accuracy"), r.get(prefix + "compressed.accuracy")
    return math.nan if b is None or c is None else float(b) - float(c)


def load(out: Path) -> list[dict]:
    rows = [json.loads(line) for line in (out / "runs.jsonl").read_text().splitlines() if line.strip()]
    latest = {}
    for r in rows:  # the last run of a (model, data, scheme) wins
        latest[(r["study.model"], r["study.data"], r["study.scheme"])] = r
    return list(latest.values())


def report(out: Path, png: Path | None) -> str:
    rows = load(out)
    order = {s: i for i, s in enumerate(SCHEMES)}
    rows.sort(key=lambda r: (r["study.data"], MODELS.index(r["study.model"]) if r["study.model"] in MODELS else 9,
                             order.get(r["study.scheme"], 99)))
    lines = ["| model | data | scheme | bits | sparsity | n test | baseline acc [95%] | compressed acc [95%] | "
             "flips [95%] | C→I | I→C | KL |", "|" + "---|" * 12]
    for r in rows:
        if r.get("error"):
            lines.append(f"| {r['study.model']} | {r['study.data']} | {r['study.scheme']} | failed: "
                         f"{r['error'][:80]} |" + " |" * 8)
            continue
        cells = [_f(r.get("compressed.bits"), 1), _f(r.get("compressed.sparsity"), 2), str(r.get("n_test")),
                 _ci(r, "baseline.accuracy"), _ci(r, "compressed.accuracy"), _ci(r, "compressed.flips"),
                 _f(r.get("compressed.c2i")), _f(r.get("compressed.i2c")), _f(r.get("compressed.kl"), 4)]
        lines.append(f"| {r['study.model']} | {r['study.data']} | {r['study.scheme']} | " + " | ".join(cells) + " |")
    # knowledge lost per relation (baseline - compressed accuracy), per model and scheme
    lost = ["", "Knowledge lost per relation (baseline accuracy − compressed accuracy on the test probes; flips in "
            "brackets):", ""]
    know = [r for r in rows if r["study.data"] == "knowledge" and not r.get("error")]
    rels = sorted({k.split(".")[1] for r in know for k in r if k.startswith("relation.") and k.endswith(".n")})
    lost += ["| model | scheme | " + " | ".join(rels) + " | all |", "|" + "---|" * (len(rels) + 3)]
    for r in know:
        cells = [f"{_f(_lost(r, f'relation.{g}.'), 2)} ({_f(r.get(f'relation.{g}.flips'), 2)})" for g in rels]
        lost.append(f"| {r['study.model']} | {r['study.scheme']} | " + " | ".join(cells) + " | "
                    f"{_f(_lost(r, ''), 2)} ({_f(r.get('compressed.flips'), 2)}) |")
    text = "\n".join(lines + lost) + "\n"
    (out / "table.md").write_text(text)
    if png is not None and know:
        _plot(know, rels, png)
    return text


#: x axis of the plot: schemes from fewest to most changed weights, with what they do to the weights
AXIS = [("int8_weight_only", "int8 weights\n(8 bits)"), ("int8_dynamic", "int8 weights+acts\n(8 bits)"),
        ("int4_weight_only", "int4 weights\n(4 bits)"), ("prune_l1_30", "pruned 30%\n(32 bits)"),
        ("prune_l1_50", "pruned 50%\n(32 bits)"), ("drop_layers_2", "2 last layers\ndropped")]


def _plot(know: list[dict], rels: list[str], png: Path) -> None:
    """Knowledge lost per relation (dots) and over all probes (bars), per scheme and model."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(11, 4.6))
    colors = dict(zip(rels, plt.get_cmap("tab10").colors))
    models = [m for m in MODELS if any(r["study.model"] == m for r in know)]
    width = 0.8 / max(1, len(models))
    for r in know:
        names = [a for a, _ in AXIS]
        if r["study.scheme"] not in names or r["study.model"] not in models:
            continue
        x = names.index(r["study.scheme"]) + (models.index(r["study.model"]) - (len(models) - 1) / 2) * width
        ax.bar(x, r["baseline.accuracy"] - r["compressed.accuracy"], width * 0.9, color="#ddd" if
               r["study.model"] == models[0] else "#bbb", edgecolor="#888", zorder=1)
        for j, g in enumerate(rels):
            b, c = r.get(f"relation.{g}.baseline.accuracy"), r.get(f"relation.{g}.compressed.accuracy")
            if b is not None and c is not None:
                ax.scatter(x + (j - len(rels) / 2) * width / (len(rels) + 2), b - c, color=colors[g], s=22, zorder=2)
    ax.set_xticks(range(len(AXIS)), [label for _, label in AXIS], fontsize=9)
    ax.axhline(0, color="#666", lw=0.8)
    ax.set_ylabel("knowledge lost\n(baseline − compressed accuracy)")
    ax.grid(axis="y", alpha=0.3)
    handles = [plt.Line2D([], [], color=colors[g], marker="o", ls="", label=g) for g in rels]
    handles += [plt.Rectangle((0, 0), 1, 1, fc=fc, ec="#888", label=f"{m}: all probes")
                for m, fc in zip(models, ("#ddd", "#bbb"))]
    ax.legend(handles=handles, fontsize=8, ncol=3, loc="upper left")
    ax.set_title("What compression forgets: accuracy lost on knowledge probes per relation (dots) and overall (bars; "
                 + " left, ".join(models) + " right)", fontsize=10)
    fig.tight_layout()
    png.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(png, dpi=110)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("what", choices=["run", "report"])
    ap.add_argument("--out", type=Path, default=Path("knowledge_study"))
    ap.add_argument("--knowledge", type=int, default=210, help="probes per model (an even share per relation)")
    ap.add_argument("--mmlu", type=int, default=90, help="MMLU questions per model (0: skip)")
    ap.add_argument("--models", nargs="+", default=list(MODELS))
    ap.add_argument("--schemes", nargs="+", default=list(SCHEMES))
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--threads", type=int, default=None)
    ap.add_argument("--png", type=Path, default=None)
    a = ap.parse_args()
    if a.what == "run":
        run(a.out, {"knowledge": a.knowledge, "mmlu": a.mmlu}, a.models, a.schemes, a.seed, a.threads)
    print(report(a.out, a.png))
    return 0


if __name__ == "__main__":
    sys.exit(main())
