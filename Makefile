# Two commands do all the set-up on a fresh machine:
#   make demo   the devcluster + service + gateway with sample Deployments
#   make test   every check CI runs (lint, types, contract, generated code, tests)
# Both create .venv and install what they need on first use. `make` alone
# lists every target (`make help`); a target's `## ` comment is its line there.

PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
export PATH := $(CURDIR)/$(BIN):$(PATH)

.PHONY: help demo test lint fmt typecheck contract generate test-only bench clean
.DEFAULT_GOAL := help

# Three distributions, editable: the client (it holds the generated stubs), the
# devcluster (the emulator for tests and the demo; never in the production image)
# and the service with its gateway.
$(BIN)/.installed: requirements/dev.txt pyproject.toml clients/python/pyproject.toml \
		devcluster/pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -r requirements/dev.txt
	$(BIN)/python -m pip install --quiet --no-deps -e clients/python -e devcluster -e .
	touch $@

help: ## list the targets
	@awk -F ':.*## ' '/^[a-z-]+:.*## / {printf "  make %-10s %s\n", $$1, $$2}' $(MAKEFILE_LIST)

# ARGS goes to `kubeupdate demo`: make demo ARGS="--http-port 0 --grpc-port 0" (any free ports).
demo: $(BIN)/.installed ## the devcluster + service + gateway (ARGS="--http-port 0 ...")
	$(BIN)/kubeupdate demo $(ARGS)

test: lint typecheck contract test-only ## every check CI runs

lint: $(BIN)/.installed ## ruff check and ruff format --check (what pre-commit runs)
	ruff check .
	ruff format --check .

# Fixes what ruff can; what remains is printed and left to `make lint`.
fmt: $(BIN)/.installed ## reformat and apply ruff's automatic fixes
	ruff check --fix --exit-zero .
	ruff format .

typecheck: $(BIN)/.installed ## mypy --strict
	mypy

# The contract: buf lint/format, generated code is fresh, no breaking change against the
# last release (scripts/check-breaking says which commit it compared with).
contract: $(BIN)/.installed ## buf lint/format/breaking, generated code is fresh
	buf lint
	buf format --diff --exit-code
	PYTHON=$(BIN)/python scripts/generate --check
	scripts/check-breaking

test-only: $(BIN)/.installed ## the tests alone (pytest)
	scripts/install-test-tools
	pytest -q --timeout=300

# Not part of `make test`: about two minutes of load on this machine. Needs wrk
# and hyperfine (Debian: apt-get install wrk hyperfine). Writes bench/results/.
bench: $(BIN)/.installed ## the benchmarks (about two minutes; needs wrk, hyperfine)
	@command -v wrk >/dev/null && command -v hyperfine >/dev/null || \
		{ echo "make bench needs wrk and hyperfine: apt-get install wrk hyperfine" >&2; exit 2; }
	$(BIN)/python -m bench

generate: $(BIN)/.installed ## regenerate the stubs and gateway/openapi.json from proto/
	PYTHON=$(BIN)/python scripts/generate

clean: ## remove .venv and the tools' caches
	rm -rf $(VENV) .mypy_cache .ruff_cache .pytest_cache
