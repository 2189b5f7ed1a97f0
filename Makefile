# Two commands for a fresh machine:  `make demo`  (set up + run the embedded default)  and  `make test`.
PY      ?= python3
VENV    := .venv
VPY     := $(VENV)/bin/python
STAMP   := $(VENV)/.installed

.PHONY: setup demo test test-fast bench clean-venv

setup: $(STAMP)

$(STAMP): pyproject.toml requirements-nodeps.txt
	test -x $(VPY) || $(PY) -m venv $(VENV)
	$(VPY) -m pip install -q --upgrade pip
	$(VPY) -m pip install -q torch==2.13.0 torchvision==0.28.0
	$(VPY) -m pip install -q -e ".[dev]"
	$(VPY) -m pip install -q --no-deps -r requirements-nodeps.txt
	touch $(STAMP)

demo: setup
	$(VPY) -m uqcompress

test: setup
	$(VPY) -m pytest -q

test-fast: setup
	$(VPY) -m pytest -q -m "not slow"

bench: setup
	$(VPY) scripts/bench_metrics.py

clean-venv:
	rm -rf $(VENV)
