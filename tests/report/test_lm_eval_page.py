"""The run page of stored lm-eval outputs (tests/fixtures/lm_eval, real lm-eval files): a title naming both models
and the tasks, a per-task table, flipped examples showing their question; predictions.csv has the input column."""
import glob
import html
import json
import re
from pathlib import Path

import pandas as pd

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "lm_eval"


def _samples(folder: Path) -> dict[tuple[str, int], str]:
    """(task, doc_id) -> the context of its first request, read straight from lm-eval's samples files."""
    out = {}
    for f in glob.glob(str(folder / "samples_*.jsonl")):
        task = re.match(r"samples_(.+?)_\d{4}-", Path(f).name).group(1)
        for line in open(f, encoding="utf-8"):
            s = json.loads(line)
            out[(task, s["doc_id"])] = s["arguments"]["gen_args_0"]["arg_0"].strip()
    return out


def test_lm_eval_run_page_and_predictions(cli, tmp_path):
    run = tmp_path / "run"
    r = cli("outputs=lm_eval", f"outputs.baseline={FIXTURES / 'float32'}", f"outputs.compressed={FIXTURES / 'int4_rtn'}",
            "progress=false", "bootstrap=0", f"hydra.run.dir={run}")
    assert r.returncode == 0, r.stderr[-2000:]
    res = json.loads((run / "results.json").read_text())
    models = [Path(json.loads(Path(glob.glob(str(FIXTURES / d / "results_*.json"))[0]).read_text())["model_name"]).name
              for d in ("float32", "int4_rtn")]
    assert [res["outputs.baseline_model"], res["outputs.compressed_model"]] == models
    pred = pd.read_csv(run / "predictions.csv")
    prompts = _samples(FIXTURES / "float32")
    assert pred["input"].tolist() == [prompts[(t, d)] for t, d in zip(pred["task"], pred["doc_id"])]
    page = (run / "report.html").read_text()
    title = html.unescape(re.search(r"<h1>(.*?)</h1>", page).group(1))
    assert "?" not in title.split("(")[0]
    assert title.startswith(f"{models[0]} vs {models[1]} on uqc_emoji_movie, uqc_hindu_knowledge")
    section = page[page.index("<h2>Per task"):]
    for task in ("uqc_emoji_movie", "uqc_hindu_knowledge", "all"):
        row = re.search(rf"<tr><td>{task}</td>(.*?)</tr>", section).group(1)
        values = [float(v) for v in re.findall(r'data-v="([^"]+)"', row)]
        scope = "all" if task == "all" else f"task.{task}"
        assert values[0] == res[f"{scope}.n"] and values[-2] == res[f"{scope}.compressed.flips"]
    test = pred[pred.split == "test"]
    flipped = test[(test.baseline_pred == test.label) != (test.compressed_pred == test.label)]
    examples = page[page.index("<h2>Flipped examples"):]
    assert 0 < len(flipped) and examples.count('<span class="input">Question: ') == min(len(flipped), 60)
