import numpy as np
import pytest
import torch


@pytest.fixture(scope="session")
def tmf():
    """torchmetrics.functional.classification (imported once: it takes a few seconds)."""
    from metric_peers import torchmetrics_functional

    return torchmetrics_functional()


@pytest.fixture
def rng():
    return np.random.default_rng(12345)
