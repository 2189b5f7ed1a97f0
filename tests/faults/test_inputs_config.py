"""Issue 16 cases 3, 12 and 13 from the command line: mistakes in the config are one line, exit 2, before any data or
model work (nothing trained, nothing cached), and a data set brings its natural OOD set.

Before (main 2e17459): ``limit=0`` ran the full data set; ``limit=-1`` trained a model then raised ZeroDivisionError;
``+selector.targt=0.5`` and ``selector.target=1.5`` were reported after the model was trained and quantized (96 s
cold); ``model=smollm2 data=bigbench_mc`` failed with "ood set 'animal_mnist' is image".
"""
from __future__ import annotations

import pytest
import yaml


def refused(cli, tmp_cache, tmp_path, *overrides: str) -> str:
    """Run the CLI, expect exit 2 with one ``uqcompress: error:`` line, and no work done; returns the message."""
    r = cli(*overrides, "progress=false", f"hydra.run.dir={tmp_path / 'run'}")
    assert r.returncode == 2, r.stderr[-2000:]
    last = r.stderr.strip().splitlines()[-1]
    assert last.startswith("uqcompress: error: "), r.stderr[-2000:]
    assert "Traceback" not in r.stderr
    assert not (tmp_cache / "models").exists() and not (tmp_cache / "events.jsonl").exists()  # nothing trained or run
    assert not (tmp_path / "run" / "results.json").exists()
    return last.removeprefix("uqcompress: error: ")


@pytest.mark.parametrize("overrides, message", [
    (["limit=0"], "limit=0 must be a whole number >= 1, or null for all"),
    (["limit=-1", "ood.limit=0"], "2 problems in the config: limit=-1 must be a whole number >= 1, or null for all; "
                                  "ood.limit=0 must be a whole number >= 1, or null for all"),
])
def test_case3_ranges_are_checked_up_front(cli, tmp_cache, tmp_path, overrides, message):
    assert refused(cli, tmp_cache, tmp_path, *overrides) == message


@pytest.mark.parametrize("overrides, message", [
    (["+selector.targt=0.5"], "selector 'coverage' has no option 'targt'; its options: target "
                              "(did you mean selector.target?)"),
    (["selector.target=1.5"], "selector.target=1.5 must be in (0, 1]"),
    (["model=smollm2", "data=bigbench_mc", "ood=trec", "data.limit=-5"],
     "2 problems in the config: data.limit=-5 must be a whole number >= 1, or null for all; ood=trec is text but "
     "data=bigbench_mc is multiple_choice; use ood=none"),
])
def test_case13_mistakes_surface_before_any_model_work(cli, tmp_cache, tmp_path, overrides, message):
    """More kinds of mistakes, each checked in-process, are in tests/test_validate.py."""
    assert refused(cli, tmp_cache, tmp_path, *overrides) == message


def test_case12_from_the_cli_the_data_set_brings_ood_none_and_an_explicit_ood_wins(cli):
    for overrides, ood in ((["model=smollm2", "data=bigbench_mc"], "none"),
                           (["model=smollm2", "data=bigbench_mc", "ood=trec"], "trec")):
        r = cli(*overrides, "--cfg", "job")
        assert r.returncode == 0, r.stderr[-2000:]
        assert yaml.safe_load(r.stdout)["ood"]["name"] == ood


@pytest.mark.parametrize("overrides, ood", [
    (["data=bigbench_mc"], "none"), (["data=trec"], "sms_spam"), (["data=sms_spam"], "trec"),
    (["data=rotten_tomatoes"], "trec"), (["data=csv"], "none"), (["data=hf_disk"], "none"),
    (["data=image_folder"], "none"), (["data=npz"], "none"), ([], "animal_mnist"), (["data=cifar10"], "animal_mnist"),
    (["data=fashion_mnist"], "animal_mnist"), (["data=trec", "ood=rotten_tomatoes"], "rotten_tomatoes"),
    (["data=image_folder", "ood=animal_mnist"], "animal_mnist"), (["ood=none", "data=sms_spam"], "none"),
])
def test_case12_natural_ood_of_every_data_set(overrides, ood):
    from tests.test_validate import composed

    assert composed(*overrides)["ood"]["name"] == ood
