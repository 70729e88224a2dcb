VENV ?= .venv
PYTHON ?= python3
PY := $(VENV)/bin/python
ARGS ?=

.PHONY: setup train test lint bench

# Idempotent: reinstalls only when requirements.txt changes.
$(VENV)/.installed: requirements.txt
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet -r requirements.txt
	touch $@

setup: $(VENV)/.installed

train: setup
	$(PY) train.py $(ARGS)

test: setup
	OMP_NUM_THREADS=1 $(PY) -m pytest -n 2 tests $(ARGS)

lint: setup
	$(PY) -m ruff format --check .
	$(PY) -m ruff check .

bench: setup
	for script in data_generation epoch_time overhead startup step_time; do $(PY) benchmarks/$$script.py || exit 1; done
