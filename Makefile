# Bootstraps .venv from pyproject.toml, then runs the local cluster, the tests or the benchmarks.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-stamp

.PHONY: up test test-unit test-integration test-llm-server bench learn-bench lint typecheck venv clean

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

# The model client against llama-cpp-python's OpenAI-compatible server (tests/llm_server, which
# `make test` does not collect). The llm-server extra builds llama.cpp from the sdist: ~8 min on
# 2 cores the first time (multimodal library skipped), seconds once pip has the wheel cached;
# the tests then take well under a minute.
LLM_SERVER_STAMP := $(VENV)/.llm-server-stamp

$(LLM_SERVER_STAMP): $(STAMP) pyproject.toml
	CMAKE_ARGS="$${CMAKE_ARGS:--DLLAVA_BUILD=OFF}" \
		$(BIN)/python -m pip install --quiet -e '.[dev,llm-server]'
	touch $(LLM_SERVER_STAMP)

test-llm-server: $(LLM_SERVER_STAMP)
	$(BIN)/python -m pytest -q -ra tests/llm_server

bench: $(STAMP)
	$(BIN)/python -m benchmarks.run

learn-bench: $(STAMP)
	$(BIN)/python -m benchmarks.learn

lint: $(STAMP) typecheck
	$(BIN)/ruff check orchestrator workers api cli tests benchmarks examples
	$(BIN)/ruff format --check orchestrator workers api cli tests benchmarks examples

# mypy on the product packages ([tool.mypy] in pyproject.toml: strict on orchestrator/core)
typecheck: $(STAMP)
	$(BIN)/mypy

clean:
	rm -rf $(VENV) build *.egg-info
