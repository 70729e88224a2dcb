SHELL := /bin/bash
VENV ?= .venv
PYTHON ?= python3
PY := $(VENV)/bin/python
ARGS ?=
LOCK_VENV ?= /tmp/neuraloperator-swe-lock
LOCKS := requirements.txt requirements-dev.txt

.PHONY: setup train test lint bench lock

# Idempotent: reinstalls only when a lock changes, and removes what the locks do not name.
$(VENV)/.installed: $(LOCKS)
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet $(addprefix -r ,$(LOCKS))
	$(PY) -m pip freeze --exclude-editable | sed 's/[=@ ].*//' | grep -vixFf <(sed -n 's/==.*//p' $(LOCKS)) \
		| xargs -r $(PY) -m pip uninstall --quiet -y
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

# Compiles the locks from pyproject.toml in a fresh venv: every package `pip install .` (requirements.txt) and
# `.[dev]` (requirements-dev.txt, on top) install, exact. The current locks are constraints, so their pins stay:
# delete a lock to upgrade. torch loses its local version label (+cpu, +cu128): the pin fits either build.
lock:
	rm -rf $(LOCK_VENV) && $(PYTHON) -m venv $(LOCK_VENV)
	$(LOCK_VENV)/bin/pip install --quiet $(addprefix -c ,$(wildcard $(LOCKS))) -e .
	{ echo "# The runtime lock: every package \`pip install .\` installs (pyproject.toml), exact; \`make lock\` compiles it."; \
	  echo "# torch==2.13.0 is pinned in pyproject.toml: a range lets pip pull a multi-GB CUDA build. This lock was"; \
	  echo "# compiled with the CPU build; on a Linux GPU machine pip takes PyTorch's CUDA build, with its nvidia-* packages."; \
	  $(LOCK_VENV)/bin/pip freeze --exclude-editable | sed 's/^torch==\([0-9.]*\)+.*/torch==\1/'; } > requirements.txt.new
	$(LOCK_VENV)/bin/pip install --quiet $(addprefix -c ,$(wildcard $(LOCKS))) -e '.[dev]'
	{ echo "# The test and lint tools' lock (pyproject.toml's dev extra), on top of requirements.txt; \`make lock\` compiles it."; \
	  $(LOCK_VENV)/bin/pip freeze --exclude-editable | sed 's/^torch==\([0-9.]*\)+.*/torch==\1/' \
	  | grep -vxFf requirements.txt.new; } > requirements-dev.txt
	mv requirements.txt.new requirements.txt
