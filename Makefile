# vae-lab: `make train` trains the default VAE, `make test` runs the test suite.
# Both create .venv and install what they need on first use; later calls skip the install.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
ARGS ?=
# pytest workers; torch uses one thread per worker (tests/conftest.py)
TEST_WORKERS ?= 2

.PHONY: install dev train test bench tensorboard lint clean

$(PY):
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip

# torch is pinned first: the local CPU build. An unpinned torch would pull GBs of CUDA packages.
$(VENV)/.installed: pyproject.toml | $(PY)
	$(PY) -m pip install -q torch==2.13.0
	$(PY) -m pip install -q -e .
	touch $@

$(VENV)/.installed-dev: pyproject.toml $(VENV)/.installed
	$(PY) -m pip install -q -e '.[dev]'
	touch $@

install: $(VENV)/.installed

dev: $(VENV)/.installed-dev

train: install
	$(VENV)/bin/vae-lab train $(ARGS)

test: dev
	$(PY) -m pytest -q -n $(TEST_WORKERS) --durations=15 $(ARGS)

bench: dev
	@for b in benchmarks/bench_*.py; do echo "== $$b"; $(PY) $$b || exit 1; done

tensorboard: install
	$(VENV)/bin/tensorboard --logdir outputs

lint: dev
	$(VENV)/bin/ruff check vae_lab tests benchmarks

clean:
	rm -rf outputs multirun .pytest_cache .ruff_cache build dist *.egg-info
	find . -name __pycache__ -type d -prune -not -path './$(VENV)/*' -exec rm -rf {} +
