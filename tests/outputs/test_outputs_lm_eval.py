"""outputs=lm_eval on synthetic sample logs in lm-eval's layout: parsing, joining, splitting and one-line errors."""
import json
import math
import warnings

import numpy as np
import pytest
from lm_eval_synth import DATE, make_pair, write_run

from uqcompress.models.causal_lm import PAD_SCORE
from uqcompress.outputs import load_outputs
from uqcompress.outputs.lm_eval import read_lm_eval, target_delimiter, task_of


def _read(b, c, **kw):
    return read_lm_eval(str(b), str(c), **kw)


def _rows(s):
    """(task, doc_id) -> (split, baseline logits row) over calibration and test."""
    out = {}
    for split in ("calibration", "test"):
        for (t, d), z in zip(s.rows[split][["task", "doc_id"]].itertuples(index=False), s.baseline[split].logits):
            out[(t, int(d))] = (split, z.numpy())
    return out


def test_reads_log_likelihoods_targets_and_pads_options(tmp_path):
    b, c, tasks, lb, lc = make_pair(tmp_path, {"alpha": 40, "beta_task_2": 30}, options=(2, 3, 5))
    s = _read(b, c, seed=0)
    assert s.facts["outputs.tasks"] == ["alpha", "beta_task_2"]
    assert s.facts["task.alpha.n"] == 40 and s.facts["outputs.num_options_max"] == 5
    rows = _rows(s)
    assert len(rows) == 70
    for t, qs in tasks.items():
        for i, q in enumerate(qs):
            split, z = rows[(t, i)]
            k = len(q["choices"])
            np.testing.assert_array_equal(z[:k], lb[t][i])  # exact: str(float) round-trips
            assert np.all(z[k:] == PAD_SCORE)
    # labels: the target index of each question, in split order
    for split in ("calibration", "test"):
        got = s.baseline[split].labels.numpy()
        want = [tasks[t][d]["answer"] for t, d in s.rows[split][["task", "doc_id"]].itertuples(index=False)]
        assert got.tolist() == want


def test_numbers_and_list_arguments_of_older_lm_eval_read_the_same(tmp_path):
    b, c, tasks, lb, lc = make_pair(tmp_path / "new", {"t": 25}, options=(3, 4))
    b2, c2, *_ = make_pair(tmp_path / "old", {"t": 25}, options=(3, 4), numbers=True)
    # older lm-eval: arguments as a list of [context, continuation] pairs
    for folder in (b2, c2):
        f = folder / f"samples_t_{DATE}.jsonl"
        lines = [json.loads(x) for x in f.read_text().splitlines()]
        for s in lines:
            s["arguments"] = [[v["arg_0"], v["arg_1"]] for v in s["arguments"].values()]
        f.write_text("\n".join(json.dumps(s) for s in lines))
    new, old = _read(b, c, normalize="acc_norm"), _read(b2, c2, normalize="acc_norm")
    for split in ("calibration", "test"):
        assert np.array_equal(new.baseline[split].logits.numpy(), old.baseline[split].logits.numpy())
        assert np.array_equal(new.compressed[split].logits.numpy(), old.compressed[split].logits.numpy())


def test_acc_norm_divides_by_option_length_without_the_target_delimiter(tmp_path):
    for delim in (" ", "\n\n"):
        b, c, tasks, lb, _ = make_pair(tmp_path / repr(delim), {"t": 30}, options=(4,), delimiter=delim)
        with warnings.catch_warnings():
            warnings.simplefilter("error")  # the recomputed acc_norm agrees with the logged one: no warning
            s = _read(b, c, normalize="acc_norm")
        rows = _rows(s)
        for i, q in enumerate(tasks["t"]):
            want = lb["t"][i] / np.array([len(ch) for ch in q["choices"]], dtype=float)
            np.testing.assert_array_equal(rows[("t", i)][1], want)
        assert s.views["_norm"].baseline.shape == (30, 4)


def test_a_wrong_delimiter_is_caught_by_lm_evals_logged_acc_norm(tmp_path):
    b, c, *_ = make_pair(tmp_path, {"t": 200}, options=(4,), delimiter="::: ")
    for folder in (b, c):  # results file says the default delimiter: acc_norm lengths would be off by 4
        (folder / f"results_{DATE}.json").write_text(json.dumps({"configs": {}}))
    with pytest.warns(UserWarning, match=r"task 't' .*recomputed acc_norm differs from lm-eval's logged acc_norm"):
        _read(b, c, normalize="acc_norm")


def test_target_delimiter_follows_lm_eval_chat_template_rule():
    cfg = {"configs": {"t": {"target_delimiter": " "}}}
    assert target_delimiter(cfg, "t") == " "
    assert target_delimiter({**cfg, "chat_template": "{{x}}"}, "t") == ""
    with_prefix = {"configs": {"t": {"target_delimiter": " ", "gen_prefix": "Answer:"}}, "chat_template": "x"}
    assert target_delimiter(with_prefix, "t") == " "


def test_text_targets_and_task_names_from_file_names(tmp_path):
    b, c, tasks, *_ = make_pair(tmp_path, {"t": 20}, options=(3,))
    for folder in (b, c):
        f = folder / f"samples_t_{DATE}.jsonl"
        lines = [json.loads(x) for x in f.read_text().splitlines()]
        for s, q in zip(lines, tasks["t"]):
            s["target"] = q["choices"][q["answer"]]  # doc_to_target returned the option's text
        f.write_text("\n".join(json.dumps(s) for s in lines))
    s = _read(b, c)
    ys = {(t, int(d)): int(y) for split in ("calibration", "test")
          for (t, d), y in zip(s.rows[split][["task", "doc_id"]].itertuples(index=False), s.baseline[split].labels)}
    assert all(ys[("t", i)] == q["answer"] for i, q in enumerate(tasks["t"]))
    assert task_of(b / f"samples_mmlu_high_school_physics_{DATE}.jsonl") == "mmlu_high_school_physics"


def test_split_is_per_task_stratified_and_seeded_by_task_name(tmp_path):
    b, c, *_ = make_pair(tmp_path / "two", {"a": 60, "b": 40}, options=(4,))
    b1, c1, *_ = make_pair(tmp_path / "one", {"a": 60}, options=(4,))
    two, one = _read(b, c, seed=3), _read(b1, c1, seed=3)
    split_of = lambda s: {(t, d): sp for sp in ("calibration", "test")  # noqa: E731
                          for t, d in s.rows[sp][["task", "doc_id"]].itertuples(index=False)}
    s2, s1 = split_of(two), split_of(one)
    assert all(s2[("a", d)] == s1[("a", d)] for d in range(60))  # adding task b does not reshuffle task a
    for t, n in (("a", 60), ("b", 40)):  # each task is split half and half
        assert sum(s2[(t, d)] == "test" for d in range(n)) == pytest.approx(n / 2, abs=2)
    assert split_of(_read(b, c, seed=4)) != s2
    assert split_of(_read(b, c, seed=3)) == s2
    frac = _read(b, c, seed=3, splits={"calibration": 0.25, "test": 0.75})
    assert len(frac.baseline["test"]) == pytest.approx(75, abs=3)


def test_tasks_option_and_non_multiple_choice_tasks_skipped(tmp_path):
    b, c, *_ = make_pair(tmp_path, {"a": 20, "b": 20}, options=(4,))
    assert _read(b, c, tasks=["b"]).facts["outputs.tasks"] == ["b"]
    for folder in (b, c):  # a generation task and a single-loglikelihood task in the same folder
        gen = {"doc_id": 0, "doc_hash": "h", "target": "42", "filtered_resps": ["the answer is 42"], "filter": "x",
               "arguments": {"gen_args_0": {"arg_0": "Q", "arg_1": {}}}}
        (folder / f"samples_gsm_{DATE}.jsonl").write_text(json.dumps(gen) + "\n")
        ll = {**gen, "filtered_resps": [["-3.5", "True"]], "target": " word"}
        (folder / f"samples_lambada_{DATE}.jsonl").write_text(json.dumps(ll) + "\n")
        # winogrande-style: one continuation after two contexts, the target is its text (no option index)
        wino = {**gen, "filtered_resps": [["-3.5", "False"], ["-2.5", "False"]], "target": "went home",
                "arguments": {f"gen_args_{j}": {"arg_0": f"ctx {j}", "arg_1": " went home"} for j in range(2)}}
        (folder / f"samples_wino_{DATE}.jsonl").write_text(json.dumps(wino) + "\n")
    with pytest.warns(UserWarning, match=r"skipped tasks that are not multiple-choice: gsm .*; lambada \(one.*; "
                                         r"wino \(the target text matches 2 options"):
        s = _read(b, c)
    assert s.facts["outputs.tasks"] == ["a", "b"]
    assert s.facts["outputs.skipped_tasks"] == ["gsm", "lambada", "wino"]
    with pytest.raises(ValueError, match="outputs.tasks: task 'nope' has no samples file in outputs.baseline"):
        _read(b, c, tasks=["nope"])


def test_pad_stays_below_very_low_real_scores(tmp_path):
    b, c, tasks, lb, lc = make_pair(tmp_path, {"t": 10}, options=(2, 4))
    for folder, lls in ((b, lb), (c, lc)):
        f = folder / f"samples_t_{DATE}.jsonl"
        lines = [json.loads(x) for x in f.read_text().splitlines()]
        lines[0]["filtered_resps"][0][0] = "-25000.5"  # a very long option
        f.write_text("\n".join(json.dumps(s) for s in lines))
    s = _read(b, c)
    z = np.concatenate([s.baseline[k].logits.numpy() for k in ("calibration", "test")])
    real = z[z > -25001]
    pad = z[z < -25001]
    assert len(pad) and pad.max() < -25000.5 - 1000 and real.min() == -25000.5 and np.isfinite(z).all()


# ---- one-line errors ------------------------------------------------------------------------------------------
def _one_line(excinfo) -> str:
    msg = str(excinfo.value)
    assert "\n" not in msg
    return msg


def test_error_missing_path_and_folder_without_samples(tmp_path):
    b, c, *_ = make_pair(tmp_path, {"t": 10})
    with pytest.raises(FileNotFoundError) as e:
        _read(tmp_path / "nope", c)
    assert f"outputs.baseline: path '{tmp_path / 'nope'}' does not exist" == _one_line(e)
    (tmp_path / "empty").mkdir()
    with pytest.raises(ValueError) as e:
        _read(b, tmp_path / "empty")
    assert "outputs.compressed: no samples_*.jsonl files under" in _one_line(e) and "--log_samples" in str(e.value)
    with pytest.raises(ValueError, match=r"outputs=lm_eval needs outputs.baseline=DIR"):
        load_outputs({"name": "lm_eval", "compressed": str(c)})


def test_error_line_that_is_not_json_names_file_and_line(tmp_path):
    b, c, *_ = make_pair(tmp_path, {"t": 10})
    f = c / f"samples_t_{DATE}.jsonl"
    lines = f.read_text().splitlines()
    lines[6] = lines[6][: len(lines[6]) // 2]  # a truncated line (killed run)
    f.write_text("\n".join(lines) + "\n")
    with pytest.raises(ValueError) as e:
        _read(b, c)
    assert _one_line(e).startswith(f"{f}:7: not JSON")


def test_error_mismatched_and_missing_docs_name_task_and_doc(tmp_path):
    b, c, *_ = make_pair(tmp_path, {"t": 10})
    f = c / f"samples_t_{DATE}.jsonl"
    lines = [json.loads(x) for x in f.read_text().splitlines()]
    lines[4]["doc_hash"] = "0" * 64
    f.write_text("\n".join(json.dumps(s) for s in lines))
    with pytest.raises(ValueError) as e:
        _read(b, c)
    assert _one_line(e).startswith("task 't': doc_id 4 has doc_hash") and "different documents" in str(e.value)
    f.write_text("\n".join(json.dumps(s) for s in lines[:3] + lines[4:]))
    with pytest.raises(ValueError) as e:
        _read(b, c)
    assert _one_line(e).startswith("task 't': doc_id 3 is in outputs.baseline but not in outputs.compressed")
    lines[4]["doc_hash"] = json.loads((b / f.name).read_text().splitlines()[4])["doc_hash"]
    lines[4]["prompt_hash"] = "x"
    f.write_text("\n".join(json.dumps(s) for s in lines))
    with pytest.raises(ValueError, match=r"task 't': doc_id 4 was asked with a different prompt"):
        _read(b, c)


def test_error_two_samples_files_for_one_task_and_bad_options(tmp_path):
    b, c, *_ = make_pair(tmp_path, {"t": 10})
    (b / "rerun").mkdir()
    (b / "rerun" / "samples_t_2026-02-02T00-00-00.jsonl").write_text((b / f"samples_t_{DATE}.jsonl").read_text())
    with pytest.raises(ValueError, match=r"outputs.baseline: two samples files for task 't'"):
        _read(b, c)
    with pytest.raises(ValueError, match=r"outputs.normalize='mean' is not one of: sum, acc_norm"):
        _read(c, c, normalize="mean")
    with pytest.raises(ValueError, match=r"outputs.splits=.*sum to 1"):
        _read(c, c, splits={"calibration": 0.5, "test": 0.6})


def test_error_target_out_of_range_and_bad_loglikelihood(tmp_path):
    b, c, *_ = make_pair(tmp_path, {"t": 10}, options=(3,))
    f = b / f"samples_t_{DATE}.jsonl"
    lines = [json.loads(x) for x in f.read_text().splitlines()]
    lines[2]["target"] = "7"
    f.write_text("\n".join(json.dumps(s) for s in lines))
    with pytest.raises(ValueError, match=rf"{f}:3: target 7 is outside the 3 options \(doc_id 2\)"):
        _read(b, c)
    lines[2]["target"] = "0"
    lines[2]["filtered_resps"][1][0] = "nan"
    f.write_text("\n".join(json.dumps(s) for s in lines))
    with pytest.raises(ValueError, match=rf"{f}:3: option 1 has log-likelihood 'nan', not a finite number"):
        _read(b, c)


def test_files_as_a_list_and_results_keys_over_all_questions(tmp_path):
    b, c, tasks, lb, lc = make_pair(tmp_path, {"a": 30, "b": 20}, options=(2, 4))
    s = read_lm_eval(sorted(map(str, b.glob("samples_*"))), sorted(map(str, c.glob("samples_*"))))
    assert s.facts["outputs.tasks"] == ["a", "b"]
    from uqcompress.outputs.scopes import scope_metrics

    m = scope_metrics(s.views)
    for t in ("a", "b"):  # plain numpy from the generated log-likelihoods
        pb = np.array([np.argmax(v) for v in lb[t]])
        pc = np.array([np.argmax(v) for v in lc[t]])
        y = np.array([q["answer"] for q in tasks[t]])
        assert m[f"task.{t}.baseline.accuracy"] == np.mean(pb == y)
        assert m[f"task.{t}.compressed.flips"] == np.mean((pb == y) != (pc == y))
        assert m[f"task.{t}.n"] == len(y)
    assert m["all.n"] == 50 and not math.isnan(m["all.compressed.kl_p999"])
