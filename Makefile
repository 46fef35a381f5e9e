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

# A fork's linters too (lint-fork, below): no fork should see a failure first.
lint: lint-fork
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

.PHONY: add-to-fork lint-fork

# Copy this package into a panther-analysis fork: make add-to-fork FORK=../panther-analysis
# (ARGS=--dry-run says what it would change). See "Adding the package to a panther-analysis fork".
add-to-fork: install
	@test -n "$(FORK)" || { echo "usage: make add-to-fork FORK=path/to/your/fork" >&2; exit 2; }
	$(BIN)/python tools/add_to_fork.py $(ARGS) "$(FORK)"

# A panther-analysis fork's make lint (pylint, bandit, isort, black with the fork's settings, kept
# in pyproject.toml) on the Python files add-to-fork copies. Every linter runs; any failure fails.
FORK_COPIED := rules global_helpers
lint-fork: install
	@status=0; \
	for linter in "pylint $(FORK_COPIED)" "bandit -q -c pyproject.toml -r $(FORK_COPIED)" \
	    "isort --profile=black --check-only $(FORK_COPIED)" \
	    "black --line-length=100 --check $(FORK_COPIED)"; do \
	    echo "$(BIN)/$$linter"; $(BIN)/$$linter || status=1; \
	done; exit $$status
