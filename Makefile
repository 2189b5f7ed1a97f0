# Two commands for a fresh machine:  `make demo`  (set up + run the embedded default)  and  `make test`.
PY      ?= python3
VENV    := .venv
VPY     := $(VENV)/bin/python
STAMP   := $(VENV)/.installed
PYTEST_ARGS ?=

.PHONY: setup data demo test test-fast bench clean-venv

setup: $(STAMP)

$(STAMP): pyproject.toml requirements-nodeps.txt
	test -x $(VPY) || $(PY) -m venv $(VENV)
	$(VPY) -m pip install -q --upgrade pip
	$(VPY) -m pip install -q torch==2.13.0 torchvision==0.28.0
	$(VPY) -m pip install -q -e ".[dev]"
	$(VPY) -m pip install -q --no-deps -r requirements-nodeps.txt
	touch $(STAMP)

# The BIG-bench source archive (CIFAR-10, CIFAR-10-C, multiple-choice tasks; 358 MB), once per machine, from the
# package index pip is configured to use, into <cache>/bigbench (cache: UQCOMPRESS_CACHE or ~/.cache/uqcompress);
# the tests that run on it read its path from UQCOMPRESS_BIGBENCH_ARCHIVE.
data: setup
	$(VPY) -m uqcompress.data.bigbench > $(VENV)/.bigbench-archive

demo: setup
	$(VPY) -m uqcompress

test: data
	UQCOMPRESS_BIGBENCH_ARCHIVE=$$(cat $(VENV)/.bigbench-archive) $(VPY) -m pytest -q $(PYTEST_ARGS)

test-fast: data
	UQCOMPRESS_BIGBENCH_ARCHIVE=$$(cat $(VENV)/.bigbench-archive) $(VPY) -m pytest -q -m "not slow" $(PYTEST_ARGS)

bench: setup
	$(VPY) scripts/bench_metrics.py

clean-venv:
	rm -rf $(VENV)
