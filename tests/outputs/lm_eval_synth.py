"""Synthetic lm-evaluation-harness sample logs, in the exact layout lm-eval 0.4.13 writes with ``--log_samples``
(``samples_<task>_<date>.jsonl`` next to ``results_<date>.json`` under ``<output_path>/<model>/``), for tests and
``scripts/bench_outputs.py``. The real thing is in ``tests/fixtures/lm_eval/`` (made by lm-eval itself)."""
from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np

DATE = "2026-01-01T00-00-00.000000"


def _sha(s: str) -> str:
    return hashlib.sha256(s.encode()).hexdigest()


def make_questions(rng: np.random.Generator, n: int, options: tuple[int, ...] = (4,)) -> list[dict]:
    """``n`` questions with a random number of options (from ``options``) of random lengths."""
    out = []
    for i in range(n):
        k = int(rng.choice(options))
        choices = ["".join(rng.choice(list("abcdefgh"), int(rng.integers(1, 12)))) for _ in range(k)]
        out.append({"question": f"Question {i}: which one?", "choices": choices, "answer": int(rng.integers(0, k))})
    return out


def sample_lines(questions: list[dict], lls: list[np.ndarray], *, numbers: bool = False,
                 delimiter: str = " ") -> list[str]:
    """One JSON line per question, as lm-eval writes it (``numbers``: log-likelihoods as numbers, as before 0.4.3)."""
    lines = []
    for i, (q, ll) in enumerate(zip(questions, lls)):
        ctx = f"Question: {q['question']}\nAnswer:"
        conts = [f"{delimiter}{c}" for c in q["choices"]]
        pairs = [[float(v) if numbers else str(float(v)), False if numbers else "False"] for v in ll]
        pred = int(np.argmax(ll))
        pred_norm = int(np.argmax(ll / np.array([float(len(c)) for c in q["choices"]])))
        doc = {"question": q["question"], "choices": q["choices"], "answer": q["answer"]}
        sample = {
            "doc_id": i, "doc": doc, "target": str(q["answer"]),
            "arguments": {f"gen_args_{j}": {"arg_0": ctx, "arg_1": c} for j, c in enumerate(conts)},
            "resps": [[p] for p in pairs], "filtered_resps": pairs, "filter": "none",
            "metrics": ["acc", "acc_norm"],
            "doc_hash": _sha(json.dumps(doc, indent=2, ensure_ascii=False)), "prompt_hash": _sha(ctx),
            "target_hash": _sha(str(q["answer"])),
            "acc": float(pred == q["answer"]), "acc_norm": float(pred_norm == q["answer"]),
        }
        lines.append(json.dumps(sample, ensure_ascii=False))
    return lines


def write_run(root: Path, tasks: dict[str, list[dict]], lls: dict[str, list[np.ndarray]], model: str = "model",
              **kw) -> Path:
    """Write one run (one samples file per task and a results file) under ``root/<model>/``; returns that folder."""
    folder = Path(root) / model
    folder.mkdir(parents=True, exist_ok=True)
    for t, qs in tasks.items():
        (folder / f"samples_{t}_{DATE}.jsonl").write_text("\n".join(sample_lines(qs, lls[t], **kw)) + "\n",
                                                         encoding="utf-8")
    configs = {t: {"task": t, "target_delimiter": kw.get("delimiter", " "), "output_type": "multiple_choice"}
               for t in tasks}
    (folder / f"results_{DATE}.json").write_text(json.dumps({"configs": configs, "chat_template": None}))
    return folder


def make_pair(root: Path, n_per_task: dict[str, int], seed: int = 0, noise: float = 0.3,
              options: tuple[int, ...] = (4,), **kw) -> tuple[Path, Path, dict, dict, dict]:
    """A baseline run and a 'compressed' run (log-likelihoods + gaussian noise) of the same questions.

    Returns (baseline folder, compressed folder, questions per task, baseline lls, compressed lls).
    """
    rng = np.random.default_rng(seed)
    tasks = {t: make_questions(rng, n, options) for t, n in n_per_task.items()}
    base, comp = {}, {}
    for t, qs in tasks.items():
        base[t] = [-rng.gamma(2.0, 3.0, len(q["choices"])) for q in qs]
        comp[t] = [b + noise * rng.standard_normal(len(b)) for b in base[t]]
    b = write_run(Path(root) / "base", tasks, base, **kw)
    c = write_run(Path(root) / "comp", tasks, comp, **kw)
    return b, c, tasks, base, comp
