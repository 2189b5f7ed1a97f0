"""data=csv / ood=csv (.csv, .tsv, .jsonl, .json): columns, label mapping, splits, errors; CLI end to end with a
tiny Hugging Face BERT folder loaded by model=checkpoint."""
import json

import pandas as pd
import pytest

from byo_helpers import one_thread, off_topic, sentences, tiny_bert_folder  # noqa: F401  (one_thread: fixture)
from uqcompress.data import load_dataset

pytestmark = pytest.mark.usefixtures("one_thread")

FAST = ["limit=300", "fit_limit=300", "progress=false", "latency.repeats=2", "threads=1"]  # checkpoint: no training


@pytest.fixture(scope="module")
def reviews(tmp_path_factory):
    root = tmp_path_factory.mktemp("text")
    texts, labels = sentences(200, seed=0)
    pd.DataFrame({"id": range(200), "review": texts, "sentiment": labels}).to_csv(root / "reviews.csv", index=False)
    pd.DataFrame({"text": off_topic(80, seed=1)}).to_json(root / "other.jsonl", orient="records", lines=True)
    return root


def test_string_labels_map_in_sorted_order_and_split_stratified(reviews):
    d = load_dataset({"name": "csv", "path": str(reviews / "reviews.csv"), "text_column": "review",
                      "label_column": "sentiment"}, seed=0)
    assert d.modality == "text" and d.num_classes == 2 and d.class_names == ["neg", "pos"]
    assert d.info["label_mapping"] == {"neg": 0, "pos": 1}
    assert {k: len(s) for k, s in d.splits.items()} == {"fit": 120, "calibration": 40, "test": 40}
    texts, labels = sentences(200, seed=0)
    truth = dict(zip(texts, labels))
    for s in d.splits.values():
        assert isinstance(s.x, list) and isinstance(s.x[0], str)
        assert [("neg", "pos")[int(v)] for v in s.y] == [truth[t] for t in s.x]  # labels travel with their texts
        assert int(s.y.sum()) == len(s) // 2


@pytest.mark.parametrize("fmt", [".tsv", ".jsonl", ".json", ".csv.gz"])
def test_other_formats_and_integer_labels(tmp_path, fmt):
    df = pd.DataFrame({"text": [f"t{i}" for i in range(30)], "label": [i % 3 for i in range(30)],
                       "part": ["train"] * 10 + ["val"] * 10 + ["test"] * 10})
    path = tmp_path / f"data{fmt}"
    if fmt == ".tsv":
        df.to_csv(path, sep="\t", index=False)
    elif fmt == ".jsonl":
        df.to_json(path, orient="records", lines=True)
    elif fmt == ".json":
        df.to_json(path, orient="records")
    else:
        df.to_csv(path, index=False)
    d = load_dataset({"name": "csv", "path": str(path), "split_column": "part"}, seed=0)
    assert "label_mapping" not in d.info and d.num_classes == 3
    assert {k: len(s) for k, s in d.splits.items()} == {"fit": 10, "calibration": 10, "test": 10}
    assert d["test"].x == [f"t{i}" for i in range(20, 30)] and d["test"].y.tolist() == [i % 3 for i in range(20, 30)]


def test_empty_text_cells_stay_text_and_numbers_become_strings(tmp_path):
    path = tmp_path / "d.csv"
    path.write_text("text,label\n,a\n123,b\nNA,a\nok,b\n" * 5)
    d = load_dataset({"name": "csv", "path": str(path), "as_ood": True}, 0)
    assert d["test"].x[:4] == ["", "123", "NA", "ok"]


def test_bad_csv_inputs_are_one_line(tmp_path, reviews):
    def err(exc=ValueError, **cfg):
        with pytest.raises(exc) as e:
            load_dataset({"name": "csv", **cfg}, 0)
        assert "\n" not in str(e.value)
        return str(e.value)

    src = str(reviews / "reviews.csv")
    assert err(path=src) == f"{src}: no column 'text' (data.text_column); it has: id, review, sentiment"
    assert "no column 'label' (data.label_column); it has: id, review, sentiment" in err(path=src, text_column="review")
    assert "does not exist" in err(FileNotFoundError, path=str(tmp_path / "nope.csv"))
    assert "needs a path: add data.path=FILE" in err()
    (tmp_path / "x.parquet").write_text("x")
    assert "unknown table format '.parquet'" in err(path=str(tmp_path / "x.parquet"))
    (tmp_path / "empty.csv").write_text("")
    assert "empty.csv: file is empty" in err(path=str(tmp_path / "empty.csv"))
    (tmp_path / "hdr.csv").write_text("text,label\n")
    assert "hdr.csv: no rows" in err(path=str(tmp_path / "hdr.csv"))
    (tmp_path / "blank.csv").write_text("text,label\na,x\nb,\nc,y\n")
    assert "sample 1 has an empty label in 'label'" in err(path=str(tmp_path / "blank.csv"))
    (tmp_path / "neg.csv").write_text("text,label\na,0\nb,-3\n")
    assert "label -3 (sample 1) in 'label' is negative" in err(path=str(tmp_path / "neg.csv"))
    (tmp_path / "bad.jsonl").write_text('{"text": "a", "label": 0}\n{broken\n')
    assert "bad.jsonl: cannot read as jsonl" in err(path=str(tmp_path / "bad.jsonl"))
    (tmp_path / "few.csv").write_text("text,label\na,0\nb,1\n")
    assert "too few samples for a 'calibration' split" in err(path=str(tmp_path / "few.csv"))
    assert "not one of the class names: neg" in err(path=src, text_column="review", label_column="sentiment",
                                                   class_names=["neg"])


def test_cli_missing_column_is_one_line(cli, reviews, tmp_path):
    r = cli("data=csv", f"data.path={reviews / 'reviews.csv'}", "model=checkpoint", "quant=none", "ood=none",
            "progress=false", f"hydra.run.dir={tmp_path}")
    assert r.returncode == 2
    assert r.stderr.strip().splitlines()[-1] == (f"uqcompress: error: {reviews / 'reviews.csv'}: no column 'text' "
                                                 "(data.text_column); it has: id, review, sentiment")


@pytest.mark.slow
def test_cli_csv_end_to_end_with_hf_folder(cli, reviews, tmp_path):
    model_dir = tiny_bert_folder(tmp_path / "bert")
    out = tmp_path / "run"
    r = cli("data=csv", f"data.path={reviews / 'reviews.csv'}", "data.text_column=review",
            "data.label_column=sentiment", "ood=csv", f"ood.path={reviews / 'other.jsonl'}",
            "model=checkpoint", f"model.path={model_dir}", "quant=int8_dynamic", *FAST, f"hydra.run.dir={out}")
    assert r.returncode == 0, r.stderr[-3000:]
    res = json.loads((out / "results.json").read_text())
    assert res["config.data"] == "csv" and res["config.model"] == "checkpoint"
    assert res["data.label_mapping"] == ["neg", "pos"]
    assert res["n_test"] == 40 and res["n_ood"] == 80
    assert res["baseline.accuracy"] > 0.9  # the tiny BERT was trained on the same toy task (other samples)
    assert res["info.baseline.arch"] == "BertForSequenceClassification"
    assert res["compressed.scheme"] == "int8_dynamic" and res["compressed.accuracy"] > 0.9
    assert res["compressed.model_size_bytes"] < res["baseline.model_size_bytes"]
    pred = pd.read_csv(out / "predictions.csv")
    assert (pred.split == "ood").sum() == 80 and set(pred[pred.split == "test"].label) == {0, 1}
