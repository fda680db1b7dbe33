# Two commands do all the set-up on a fresh machine:
#   make demo   the devcluster + service + gateway with sample Deployments
#   make test   every check CI runs (lint, types, contract, generated code, tests)
# Both create .venv and install what they need on first use.

PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
export PATH := $(CURDIR)/$(BIN):$(PATH)

.PHONY: demo test lint typecheck contract generate test-only bench clean

$(BIN)/.installed: requirements/dev.txt pyproject.toml clients/python/pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -r requirements/dev.txt
	$(BIN)/python -m pip install --quiet --no-deps -e clients/python -e .
	touch $@

demo: $(BIN)/.installed
	$(BIN)/kubeupdate demo

test: lint typecheck contract test-only

lint: $(BIN)/.installed
	ruff check .
	ruff format --check .

typecheck: $(BIN)/.installed
	mypy

# The contract: buf lint/format, generated code is fresh, no breaking change against main.
contract: $(BIN)/.installed
	buf lint
	buf format --diff --exit-code
	PYTHON=$(BIN)/python scripts/generate --check
	scripts/check-breaking

test-only: $(BIN)/.installed
	pytest -q --timeout=300

# Not part of `make test`: about two minutes of load on this machine. Needs wrk
# and hyperfine (Debian: apt-get install wrk hyperfine). Writes bench/results/.
bench: $(BIN)/.installed
	@command -v wrk >/dev/null && command -v hyperfine >/dev/null || \
		{ echo "make bench needs wrk and hyperfine: apt-get install wrk hyperfine" >&2; exit 2; }
	$(BIN)/python -m bench

generate: $(BIN)/.installed
	PYTHON=$(BIN)/python scripts/generate

clean:
	rm -rf $(VENV) .mypy_cache .ruff_cache .pytest_cache
