"""Issue 27: training options out of range.

Before (main abf16aa): ``model.epochs=-3`` trained nothing and both models reported accuracy 0.100 with exit 0;
``model.batch_size=0`` died in models/train.py with a ZeroDivisionError traceback. Now both are one line, exit 2,
before any data or model work.
"""
from __future__ import annotations

import pytest
import torch

from test_inputs_config import refused


@pytest.mark.parametrize("overrides, message", [
    (["model.epochs=-3"], "model.epochs=-3 must be a whole number >= 0"),
    (["model.batch_size=0"], "model.batch_size=0 must be a whole number >= 1"),
    (["model=minilm", "data=trec", "model.head_epochs=-1", "model.head_batch_size=0"],
     "2 problems in the config: model.head_epochs=-1 must be a whole number >= 0; model.head_batch_size=0 must be a "
     "whole number >= 1"),
])
def test_training_options_out_of_range_are_refused_before_work(cli, tmp_cache, tmp_path, overrides, message):
    assert refused(cli, tmp_cache, tmp_path, *overrides) == message


def test_fit_classifier_refuses_them_too():
    from uqcompress.models.train import fit_classifier

    x, y = torch.randn(8, 4), torch.arange(8) % 2
    with pytest.raises(ValueError, match=r"^batch_size=0 must be a whole number >= 1$"):
        fit_classifier(torch.nn.Linear(4, 2), x, y, batch_size=0, progress=False)
    with pytest.raises(ValueError, match=r"^epochs=-3 must be a whole number >= 0$"):
        fit_classifier(torch.nn.Linear(4, 2), x, y, epochs=-3, progress=False)
