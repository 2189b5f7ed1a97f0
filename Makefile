# Two commands for a fresh machine:  `make demo`  (set up + run the embedded default)  and  `make test`.
PY      ?= python3
VENV    := .venv
VPY     := $(VENV)/bin/python
STAMP   := $(VENV)/.installed
PYTEST_ARGS ?=

.PHONY: setup debian-data data demo test test-fast bench clean-venv

setup: $(STAMP) debian-data

# Fashion-MNIST from Debian (apt-get where usable; otherwise the one command to run is printed)
debian-data:
	@bash scripts/install_debian_data.sh

$(STAMP): pyproject.toml requirements-nodeps.txt
	test -x $(VPY) || $(PY) -m venv $(VENV)
	$(VPY) -m pip install -q --upgrade pip
	$(VPY) -m pip install -q torch==2.13.0 torchvision==0.28.0
	$(VPY) -m pip install -q -e ".[dev]"
	$(VPY) -m pip install -q --no-deps -r requirements-nodeps.txt
	touch $(STAMP)

# Optional: the BIG-bench source archive (CIFAR-10, CIFAR-10-C, multiple-choice tasks; 358 MB) from a package index
# that still serves it (the public index no longer does), once per machine into <cache>/bigbench. Nothing needs it:
# its tests skip with the reason when it is missing; point UQCOMPRESS_BIGBENCH_ARCHIVE at a copy you have instead.
data: setup
	$(VPY) -m uqcompress.data.bigbench

demo: setup
	$(VPY) -m uqcompress

test: setup
	$(VPY) -m pytest -q $(PYTEST_ARGS)

test-fast: setup
	$(VPY) -m pytest -q -m "not slow" $(PYTEST_ARGS)

bench: setup
	$(VPY) scripts/bench_metrics.py

clean-venv:
	rm -rf $(VENV)
