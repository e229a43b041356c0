# Bootstraps .venv from pyproject.toml, then runs the local cluster, the tests or the benchmarks.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-stamp

.PHONY: up test test-unit test-integration bench lint typecheck venv clean

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

venv: $(STAMP)

up: $(STAMP)
	exec $(BIN)/meowstik up $(UP_ARGS)

test: $(STAMP)
	$(BIN)/python -m pytest -q -ra

test-unit: $(STAMP)
	$(BIN)/python -m pytest -q -ra tests/unit

test-integration: $(STAMP)
	$(BIN)/python -m pytest -q -ra tests/integration

bench: $(STAMP)
	$(BIN)/python -m benchmarks.run

lint: $(STAMP) typecheck
	$(BIN)/ruff check orchestrator workers api cli tests benchmarks examples
	$(BIN)/ruff format --check orchestrator workers api cli tests benchmarks examples

# mypy on the product packages ([tool.mypy] in pyproject.toml: strict on orchestrator/core)
typecheck: $(STAMP)
	$(BIN)/mypy

clean:
	rm -rf $(VENV) build *.egg-info
