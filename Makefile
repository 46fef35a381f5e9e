# One entry point for people and CI. `make test` installs what it needs first.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
PAT := $(BIN)/panther_analysis_tool --skip-version-check

.PHONY: install test test-rules test-python lint fmt clean

# The install is editable, so only a change to pyproject.toml (dependencies, scripts) needs a
# new one; the stamp keeps `make test` and `make replay` from reinstalling every time.
INSTALLED := $(VENV)/.installed

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

# panther-detection-helpers 0.4.0 (what a panther-analysis fork's Pipfile.lock installs) beside
# the 1.0.x the package uses: tests/test_address_history.py runs the baseline on both.
HELPERS_0_4 := $(VENV)/panther-detection-helpers-0.4.0

$(INSTALLED): pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	$(BIN)/python -m pip install --quiet --no-deps --upgrade --target $(HELPERS_0_4) \
		panther-detection-helpers==0.4.0
	touch $@

install: $(INSTALLED)

test: install test-rules test-python lint

test-rules:
	$(PAT) test
	$(PAT) check-packs

test-python:
	$(BIN)/python -m pytest

lint:
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/actionlint

fmt:
	$(BIN)/ruff check --fix .
	$(BIN)/ruff format .

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache .hypothesis

.PHONY: bench samples

# Rule cost per event, replay throughput and peak memory (a measurement, not a test).
bench: install
	$(BIN)/python bench/benchmark.py

# Rewrite samples/cloudtrail/ from its seeded generator (byte-identical on every run).
samples:
	$(PYTHON) samples/generate.py

.PHONY: replay

# Set up, then replay the rules over the sample dataset (samples/cloudtrail/) and print the alerts.
# Pass other inputs or options with ARGS, e.g. make replay ARGS="--format json path/to/logs".
replay: install
	$(BIN)/detection-replay $(ARGS)

# Mutation testing of the rule and helpers (cosmic-ray, off-tree copies); ~5 minutes on 2 cores.
.PHONY: mutation
mutation: install
	$(BIN)/python mutation/run.py
