"""``outputs=lm_eval``: per-sample logs of lm-evaluation-harness (``lm_eval ... --log_samples``) as stored outputs.

Each multiple-choice question in a ``samples_<task>_<date>.jsonl`` file holds, per answer option, a
``[log-likelihood, is_greedy]`` pair in ``filtered_resps`` (strings in lm-eval >= 0.4.3, numbers before), the
(context, continuation) pairs in ``arguments`` and the answer in ``target`` (an option index, or the option's text).
uqcompress reads the option log-likelihoods as the question's logits, so softmax over the options gives the
probabilities every scorer, selector and metric uses, exactly as for ``model=smollm2``:

* ``outputs.normalize=sum``: the summed log-likelihood of each option, whose argmax is lm-eval's ``acc``;
* ``outputs.normalize=acc_norm``: the log-likelihood divided by the option's length in characters, whose argmax is
  lm-eval's ``acc_norm`` (lm-eval divides by ``len(choice)``, the option text without the ``target_delimiter``
  (default ``" "``) that it puts in front of it in the continuation; the delimiter is read from the run's
  ``results_*.json`` when it is there).

The two runs (baseline and compressed) are joined per task by ``doc_id`` and checked by ``doc_hash`` (and
``prompt_hash``, ``target``, the number of options): a question missing from one run or a mismatch is one line naming
the task and the doc_id. Questions may have different numbers of options; missing ones are padded with
:data:`~uqcompress.models.causal_lm.PAD_SCORE` (finite, far below any real log-likelihood). Each task is split into
calibration and test on its own (``outputs.splits``, stratified by answer, seeded by ``seed`` and the task name), so
every task is in both splits. Tasks whose samples are not multiple-choice questions with one answer index (generation,
single log-likelihood, several targets, multiple-input tasks such as winogrande whose samples do not say which
option is right) are skipped with one warning and listed in ``outputs.skipped_tasks``.

Example (``samples.jsonl`` files written by hand):
    >>> import json, tempfile, pathlib
    >>> d = pathlib.Path(tempfile.mkdtemp())
    >>> def line(i, lls, y): return json.dumps({"doc_id": i, "doc_hash": f"h{i}", "prompt_hash": "p", "target": str(y),
    ...     "filtered_resps": [[str(v), "False"] for v in lls], "filter": "none", "metrics": ["acc"],
    ...     "arguments": {f"gen_args_{j}": {"arg_0": "Q", "arg_1": f" option{j}"} for j in range(len(lls))}})
    >>> for run, shift in (("base", 0.0), ("comp", 0.5)):
    ...     (d / run).mkdir()
    ...     _ = (d / run / "samples_toy_2024-01-01T00-00-00.jsonl").write_text(
    ...         "\\n".join(line(i, [-1.0 - shift * (i % 2), -2.0, -3.0][: 2 + i % 2], i % 2) for i in range(8)))
    >>> s = read_lm_eval(str(d / "base"), str(d / "comp"), seed=0)
    >>> s.facts["outputs.tasks"], len(s.baseline["test"]) + len(s.baseline["calibration"])
    (['toy'], 8)
"""
from __future__ import annotations

import itertools
import json
import logging
import math
import re
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import pandas as pd

from uqcompress.outputs import SOURCES
from uqcompress.outputs.base import StoredOutputs, check_fractions, from_arrays

log = logging.getLogger(__name__)

NORMALIZE = ("sum", "acc_norm")
SAMPLES_GLOB = "samples_*.jsonl"
_DATE = re.compile(r"^samples_(?P<task>.+?)_(?P<date>\d{4}-\d{2}-\d{2}T[\d\-.:]+)$")


class NotMultipleChoice(Exception):
    """A task whose samples are not multiple-choice questions (skipped with a warning)."""


@dataclass(slots=True)
class Doc:
    """One question of one run."""

    doc_id: int
    doc_hash: str | None
    prompt_hash: str | None
    target: int
    lls: list[float]      # log-likelihood per option
    lengths: list[int]    # characters of each option (lm-eval's acc_norm divisor)
    acc: float            # lm-eval's own per-sample acc (NaN when not logged)
    acc_norm: float       # and acc_norm
    line: int             # line in its samples file, for messages
    prompt: str = ""      # the context lm-eval scored the options after (the question), for predictions.csv


def task_of(path: Path) -> str:
    """The task name in lm-eval's ``samples_<task>_<date>.jsonl`` file name.

    >>> task_of(Path("samples_arc_easy_2024-05-01T12-30-05.123456.jsonl"))
    'arc_easy'
    """
    m = _DATE.match(path.stem)
    return m.group("task") if m else path.stem[len("samples_"):]


def find_samples(spec: str | Sequence[str] | None, option: str) -> list[Path]:
    """``samples_*.jsonl`` files of one run: a directory (searched recursively) or a list of files."""
    if spec in (None, "", "???") or (isinstance(spec, (list, tuple)) and not spec):
        raise ValueError(f"outputs=lm_eval needs {option}=DIR (an lm-eval --output_path run with --log_samples) "
                         "or a list of samples_*.jsonl files")
    items = [spec] if isinstance(spec, (str, Path)) else list(spec)
    files: list[Path] = []
    for item in items:
        p = Path(str(item)).expanduser()
        if not p.exists():
            raise FileNotFoundError(f"{option}: path '{p}' does not exist")
        if p.is_dir():
            found = sorted(f for f in p.rglob(SAMPLES_GLOB) if f.is_file())
            if not found:
                raise ValueError(f"{option}: no {SAMPLES_GLOB} files under '{p}' (run lm_eval with --log_samples)")
            files.extend(found)
        else:
            files.append(p)
    by_task: dict[str, Path] = {}
    for f in files:
        t = task_of(f)
        if t in by_task and by_task[t].resolve() != f.resolve():
            raise ValueError(f"{option}: two samples files for task '{t}' ({by_task[t]} and {f}); pass the ones you "
                             "mean as a list of files")
        by_task[t] = f
    return [by_task[t] for t in sorted(by_task)]


def _run_config(samples: Path, cache: dict[Path, dict]) -> dict[str, Any]:
    """The ``results_<date>.json`` lm-eval wrote with ``samples`` (same date; else the newest in its folder), or {}.
    Parsed once per file (``cache``)."""
    m = _DATE.match(samples.stem)
    same = samples.parent / f"results_{m.group('date')}.json" if m else None
    found = [same] if same is not None and same.is_file() else sorted(samples.parent.glob("results_*.json"))[-1:]
    if not found:
        return {}
    if found[0] not in cache:
        try:
            cache[found[0]] = json.loads(found[0].read_text(encoding="utf-8"))
        except (OSError, ValueError) as e:
            log.warning("ignoring %s (%s); target_delimiter taken as ' '", found[0], type(e).__name__)
            cache[found[0]] = {}
    return cache[found[0]]


def target_delimiter(results: dict[str, Any], task: str) -> str:
    """What lm-eval put in front of each option in the continuation, as its ``construct_requests`` does: the task's
    ``target_delimiter`` (default ``" "``); with a chat template, ``""`` unless the task has a ``gen_prefix`` that
    does not end in whitespace.

    >>> target_delimiter({}, "t"), target_delimiter({"configs": {"t": {"target_delimiter": "\\n"}}}, "t")
    (' ', '\\n')
    """
    cfg = (results.get("configs") or {}).get(task) or {}
    delim = cfg.get("target_delimiter", " ")
    delim = " " if delim is None else str(delim)
    if results.get("chat_template") or (results.get("config") or {}).get("apply_chat_template"):
        gen_prefix = cfg.get("gen_prefix")
        if not (gen_prefix and not str(gen_prefix)[-1:].isspace()):
            delim = ""
    return delim


def _continuations(args: Any, where: str) -> list[str]:
    """The continuation strings of ``arguments``: a dict ``{gen_args_i: {arg_0: context, arg_1: continuation}}``
    (lm-eval >= 0.4.3, written in order) or a list of [context, continuation] pairs (earlier)."""
    try:
        if isinstance(args, dict):
            return [p["arg_1"] for p in args.values()]
        return [p[1] for p in args]
    except (KeyError, IndexError, TypeError):
        raise ValueError(f"{where}: 'arguments' does not hold (context, continuation) pairs") from None


def _log_likelihoods(resps: Any, where: str) -> list[float]:
    """Option log-likelihoods from ``filtered_resps`` ([loglik, is_greedy] pairs; strings or numbers)."""
    try:
        lls = [float(ll) for ll, _ in resps]
    except (TypeError, ValueError):
        lls = None
    if lls is None or not resps:  # explain why (rare: the fast path above reads every multiple-choice sample)
        if not isinstance(resps, list) or not resps:
            raise NotMultipleChoice("no filtered_resps")
        for r in resps:
            if not (isinstance(r, (list, tuple)) and len(r) == 2):
                raise NotMultipleChoice(f"filtered_resps holds {str(r)[:40]!r}, not [log-likelihood, is_greedy] "
                                        "pairs")
            try:
                float(r[0])
            except (TypeError, ValueError):
                raise NotMultipleChoice(f"filtered_resps holds {str(r[0])[:40]!r}, not a log-likelihood") from None
    if not math.isfinite(math.fsum(lls)):
        i = next(i for i, v in enumerate(lls) if not math.isfinite(v))
        raise ValueError(f"{where}: option {i} has log-likelihood {resps[i][0]!r}, not a finite number")
    return lls


def _target(raw: Any, choices: list[str], where: str) -> int:
    """The answer index from ``target``: an index (``"2"`` or 2), or the text of exactly one of the options."""
    if isinstance(raw, str) and raw.isdigit() or isinstance(raw, int) and not isinstance(raw, bool):
        return int(raw)
    text = str(raw).strip()
    if re.fullmatch(r"-?\d+", text):
        return int(text)
    if text.startswith("["):
        raise NotMultipleChoice(f"several targets per question ({text[:40]}) are not supported")
    hits = [i for i, c in enumerate(choices) if c == str(raw)]
    hits = hits or [i for i, c in enumerate(choices) if c.strip() == text]
    if len(hits) == 1:
        return hits[0]
    if len(hits) > 1:  # e.g. winogrande: one continuation after several contexts; the target names no option
        raise NotMultipleChoice(f"the target text matches {len(hits)} options (a multiple-input task); the answer "
                                "index is not in the samples")
    raise NotMultipleChoice(f"{where}: target {str(raw)[:60]!r} is neither an option index nor one of the options")


def _logged(value: Any) -> float:
    return float(value) if isinstance(value, (int, float)) else math.nan


def read_samples(path: Path, delimiter: str) -> tuple[dict[int, Doc], set[str]]:
    """The questions of one samples file by doc_id, and the set of lm-eval filters seen."""
    docs: dict[int, Doc] = {}
    filters: set[str] = set()
    cut = len(delimiter)
    loads = json.loads
    with open(path, encoding="utf-8") as f:
        for lineno, text in enumerate(f, 1):
            try:
                s = loads(text)
            except ValueError as e:
                if not text.strip():
                    continue
                raise ValueError(f"{path}:{lineno}: not JSON ({getattr(e, 'msg', e)}); is the file complete?") from None
            where = f"{path}:{lineno}"
            if not isinstance(s, dict) or "doc_id" not in s or "filtered_resps" not in s:
                raise ValueError(f"{where}: not an lm-eval sample (needs doc_id, filtered_resps, target)")
            filters.add(str(s.get("filter", "none")))
            lls = _log_likelihoods(s["filtered_resps"], where)
            conts = _continuations(s.get("arguments", []), where)
            if len(lls) % 2 == 0 and "acc_mutual_info" in (s.get("metrics") or ()):
                lls, conts = lls[: len(lls) // 2], conts[: len(lls) // 2]  # second half: unconditional scores
            if len(lls) < 2:
                raise NotMultipleChoice("one log-likelihood per question (a loglikelihood task, not multiple choice)")
            if len(conts) != len(lls):
                raise ValueError(f"{where}: {len(lls)} log-likelihoods but {len(conts)} continuations in 'arguments'")
            # lm-eval's acc_norm divides by len(choice); the continuation is target_delimiter + choice
            lengths = [len(c) - cut if cut and c.startswith(delimiter) else len(c) for c in conts]
            raw = s.get("target")
            target = int(raw) if isinstance(raw, str) and raw.isdigit() else _target(
                raw, [c[cut:] if cut and c.startswith(delimiter) else c for c in conts], where)
            if not 0 <= target < len(lls):
                raise ValueError(f"{where}: target {target} is outside the {len(lls)} options (doc_id {s['doc_id']})")
            raw_id = s["doc_id"]
            if isinstance(raw_id, bool) or not (isinstance(raw_id, int) or isinstance(raw_id, str)
                                                and raw_id.strip().isdigit()):
                raise ValueError(f"{where}: doc_id {json.dumps(raw_id)} is not a whole number (lm-eval writes the "
                                 "question's index in its task)")
            doc_id = int(raw_id)
            if doc_id in docs:
                raise ValueError(f"{where}: doc_id {doc_id} appears twice in {path.name}")
            docs[doc_id] = Doc(doc_id, s.get("doc_hash"), s.get("prompt_hash"), target, lls, lengths,
                               _logged(s.get("acc")), _logged(s.get("acc_norm")), lineno, _prompt(s.get("arguments")))
    if not docs:
        raise ValueError(f"{path}: no samples in the file")
    return docs, filters


#: the most characters of a question kept in predictions.csv's ``input`` column
MAX_PROMPT_CHARS = 500


def _prompt(args: Any) -> str:
    """The context of a sample's first request (lm-eval's ``arguments``: a dict of ``gen_args_i`` or a list of
    [context, continuation] pairs), cut to :data:`MAX_PROMPT_CHARS`; "" when the file has none."""
    first = next(iter(args.values()), None) if isinstance(args, dict) else (args[0] if args else None)
    ctx = (first.get("arg_0") if isinstance(first, dict) else first[0] if isinstance(first, (list, tuple)) and first
           else None)
    if not isinstance(ctx, str):
        return ""
    ctx = ctx.strip()
    return ctx if len(ctx) <= MAX_PROMPT_CHARS else ctx[: MAX_PROMPT_CHARS - 1] + "…"


def _model_name(results: dict[str, Any]) -> str | None:
    """The model lm-eval names in its results file (``model_name``, else ``pretrained=`` of its model_args), as the
    last part of a path."""
    name = results.get("model_name")
    if not name:
        args = (results.get("config") or {}).get("model_args")
        name = args.get("pretrained") if isinstance(args, dict) else None
        if isinstance(args, str):
            name = dict(kv.split("=", 1) for kv in args.split(",") if "=" in kv).get("pretrained")
    return Path(str(name)).name if name else None


def _read_task(path: Path, cache: dict[Path, dict]) -> dict[int, Doc]:
    docs, filters = read_samples(path, target_delimiter(_run_config(path, cache), task_of(path)))
    if len(filters) > 1:
        raise NotMultipleChoice(f"samples for several filters ({', '.join(sorted(filters))})")
    return docs


def join_task(task: str, base: dict[int, Doc], comp: dict[int, Doc], names: tuple[str, str]) -> list[int]:
    """The doc_ids of ``task`` in both runs, sorted; one line naming the task and the doc for any mismatch."""
    only_b, only_c = sorted(set(base) - set(comp)), sorted(set(comp) - set(base))
    if only_b or only_c:
        who, missing = (names[1], only_b) if only_b else (names[0], only_c)
        other = names[0] if who == names[1] else names[1]
        raise ValueError(f"task '{task}': doc_id {missing[0]} is in {other} but not in {who} "
                         f"({len(only_b) + len(only_c)} docs in only one run; were both runs made with the same "
                         "--limit and task version?)")
    ids = sorted(base)
    for i in ids:
        b, c = base[i], comp[i]
        if b.doc_hash != c.doc_hash:
            raise ValueError(f"task '{task}': doc_id {i} has doc_hash {b.doc_hash} in {names[0]} but {c.doc_hash} "
                             f"in {names[1]}: the runs read different documents")
        if b.prompt_hash is not None and c.prompt_hash is not None and b.prompt_hash != c.prompt_hash:
            raise ValueError(f"task '{task}': doc_id {i} was asked with a different prompt in the two runs "
                             "(prompt_hash differs: num_fewshot, chat template or task version?)")
        if len(b.lls) != len(c.lls) or b.target != c.target:
            raise ValueError(f"task '{task}': doc_id {i} has {len(b.lls)} options and answer {b.target} in "
                             f"{names[0]} but {len(c.lls)} options and answer {c.target} in {names[1]}")
    return ids


def _check_logged(tasks: list[str], group: np.ndarray, lines: np.ndarray, files: list[Path], who: str,
                  scores: np.ndarray, labels: np.ndarray, logged: np.ndarray, key: str) -> None:
    """Compare the recomputed correctness with lm-eval's own per-sample ``acc`` / ``acc_norm``: a disagreement means
    the samples were read differently from how lm-eval scored them (e.g. another target_delimiter); one warning
    per task."""
    bad = ~np.isnan(logged) & ((scores.argmax(1) == labels) != (logged == 1.0))
    for g in np.unique(group[bad]):
        rows = np.flatnonzero(bad & (group == g))
        warnings.warn(f"task '{tasks[g]}' ({who}): the recomputed {key} differs from lm-eval's logged {key} on "
                      f"{len(rows)} of {int((group == g).sum())} questions (first: {files[g]}:{lines[rows[0]]})",
                      stacklevel=3)


def _pad(rows: list[list[float]], sizes: np.ndarray, k: int, pad: float) -> np.ndarray:
    """(N, k) float64 from ragged rows, missing options = ``pad``."""
    out = np.full((len(rows), k), pad, dtype=np.float64)
    out[np.arange(k) < sizes[:, None]] = np.fromiter(itertools.chain.from_iterable(rows), np.float64, sizes.sum())
    return out


@SOURCES.register("lm_eval")
def read_lm_eval(baseline: str | Sequence[str] | None = None, compressed: str | Sequence[str] | None = None,
                 tasks: Sequence[str] | None = None, normalize: str = "sum", splits: dict | None = None, *,
                 seed: int = 0) -> StoredOutputs:
    """Read and join two lm-eval runs (see the module docstring)."""
    from uqcompress.models.causal_lm import PAD_SCORE

    if normalize not in NORMALIZE:
        raise ValueError(f"outputs.normalize='{normalize}' is not one of: {', '.join(NORMALIZE)}")
    fractions = check_fractions(splits)
    names = ("outputs.baseline", "outputs.compressed")
    files_b = {task_of(f): f for f in find_samples(baseline, names[0])}
    files_c = {task_of(f): f for f in find_samples(compressed, names[1])}
    if tasks is not None:
        wanted = [tasks] if isinstance(tasks, str) else [str(t) for t in tasks]
        for t in wanted:
            for files, name in ((files_b, names[0]), (files_c, names[1])):
                if t not in files:
                    raise ValueError(f"outputs.tasks: task '{t}' has no samples file in {name} "
                                     f"(it has: {', '.join(sorted(files)) or 'none'})")
        common = wanted
    else:
        common = sorted(set(files_b) & set(files_c))
        one_sided = sorted(set(files_b) ^ set(files_c))
        if one_sided:
            log.warning("tasks in only one run are left out: %s", ", ".join(one_sided))
        if not common:
            raise ValueError(f"no task has samples in both runs ({names[0]}: {', '.join(sorted(files_b))}; "
                             f"{names[1]}: {', '.join(sorted(files_c))})")
    skipped, kept, files, cache = [], [], [], {}
    lls_b, lls_c, lens, targets, group, ids, logged, lines, prompts = [], [], [], [], [], [], [], [], []
    for t in common:
        try:
            db, dc = _read_task(files_b[t], cache), _read_task(files_c[t], cache)
        except NotMultipleChoice as e:
            skipped.append(f"{t} ({e})")
            continue
        order = join_task(t, db, dc, names)
        group += [len(kept)] * len(order)
        kept.append(t)
        files.append((files_b[t], files_c[t]))
        ids += order
        for i in order:
            b, c = db[i], dc[i]
            lls_b.append(b.lls)
            lls_c.append(c.lls)
            lens.append(b.lengths)
            targets.append(b.target)
            logged.append((b.acc, b.acc_norm, c.acc, c.acc_norm))
            lines.append((b.line, c.line))
            prompts.append(b.prompt)
    if skipped:
        warnings.warn(f"skipped tasks that are not multiple-choice: {'; '.join(skipped)}", stacklevel=2)
    if not kept:
        raise ValueError(f"no multiple-choice task to evaluate: {'; '.join(skipped)}")
    sizes = np.fromiter(map(len, lls_b), np.int64, len(lls_b))
    k = int(sizes.max())
    sum_b, sum_c = _pad(lls_b, sizes, k, 0.0), _pad(lls_c, sizes, k, 0.0)
    real = np.arange(k) < sizes[:, None]
    lowest = min(sum_b[real].min(), sum_c[real].min())
    # far below any real score: PAD_SCORE, or lower still for a run with scores near it (very long options)
    pad = PAD_SCORE if lowest > PAD_SCORE / 10 else math.floor(lowest) + PAD_SCORE
    # an option with an empty text would divide by 0; lm-eval gets -inf there, uqcompress keeps scores finite
    chars = np.maximum(_pad(lens, sizes, k, 1.0), 1.0)
    norm_b, norm_c = np.where(real, sum_b / chars, pad), np.where(real, sum_c / chars, pad)
    sum_b[~real] = pad
    sum_c[~real] = pad
    y = np.asarray(targets, dtype=np.int64)
    group_arr = np.asarray(group, dtype=np.int64)
    logged_arr, lines_arr = np.asarray(logged, dtype=np.float64), np.asarray(lines, dtype=np.int64)
    for j, (who, z, zn) in enumerate(((names[0], sum_b, norm_b), (names[1], sum_c, norm_c))):
        paths = [f[j] for f in files]
        _check_logged(kept, group_arr, lines_arr[:, j], paths, who, z, y, logged_arr[:, 2 * j], "acc")
        _check_logged(kept, group_arr, lines_arr[:, j], paths, who, zn, y, logged_arr[:, 2 * j + 1], "acc_norm")
    use_b, use_c = (sum_b, sum_c) if normalize == "sum" else (norm_b, norm_c)
    rows = pd.DataFrame({"task": np.asarray(kept, dtype=object)[group_arr], "doc_id": np.asarray(ids),
                         "input": prompts})
    counts = np.bincount(group_arr, minlength=len(kept))
    facts: dict[str, Any] = {
        "outputs.source": "lm_eval", "outputs.normalize": normalize, "outputs.tasks": kept,
        "outputs.baseline": _describe(baseline), "outputs.compressed": _describe(compressed),
        "outputs.num_options_max": int(k), "outputs.num_questions": int(len(targets)),
        "outputs.skipped_tasks": [x.split(" (", 1)[0] for x in skipped],
    }
    for who, f in (("baseline", files[0][0]), ("compressed", files[0][1])):  # the models, as lm-eval names them
        model = _model_name(_run_config(f, cache))
        if model:
            facts[f"outputs.{who}_model"] = model
    facts.update({f"task.{t}.n": int(c) for t, c in zip(kept, counts)})
    return from_arrays(use_b, use_c, y, fractions=fractions, seed=seed,
                       names=names, rows=rows, group=group_arr, group_names=kept,
                       views={"": (sum_b, sum_c), "_norm": (norm_b, norm_c)}, facts=facts)


def _describe(spec: Any) -> str | list[str]:
    """The paths as given, made absolute (``results.json`` says which files were read)."""
    if isinstance(spec, (list, tuple)):
        return [str(Path(str(s)).expanduser().resolve()) for s in spec]
    return str(Path(str(spec)).expanduser().resolve())
