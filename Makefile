# mnist-pipeline: the two commands of the quick start, and a few helpers.
#   make run    create .venv, install the pinned stack, run the sandbox job (kedro run --env azure)
#   make test   create .venv, install the pinned stack, run lint and the whole test suite
SHELL := /bin/bash
PYTHON ?= python3.11
VENV ?= .venv
BIN := $(VENV)/bin
# kedro-telemetry must never prompt or phone home.
export KEDRO_DISABLE_TELEMETRY := 1
export DO_NOT_TRACK := 1
# Executors and TensorFlow workers bind to loopback unless told otherwise.
export SPARK_LOCAL_IP ?= 127.0.0.1

.PHONY: install run test lint format benchmark lock clean

$(VENV)/.installed: pyproject.toml requirements.lock
	@command -v $(PYTHON) >/dev/null || { echo "$(PYTHON) not found: install Python 3.11" >&2; exit 1; }
	@command -v java >/dev/null || { echo "java not found: install a Java 17 runtime (Spark needs it)" >&2; exit 1; }
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade "pip==25.3"
	$(BIN)/python -m pip install --quiet -c requirements.lock -e ".[test]"
	touch $@

install: $(VENV)/.installed

run: install
	$(BIN)/kedro run --env azure

test: install lint
	$(BIN)/python -m pytest $(PYTEST_ARGS)

lint: install
	$(BIN)/ruff check src tests benchmarks
	$(BIN)/ruff format --check src tests benchmarks

format: install
	$(BIN)/ruff check --fix src tests benchmarks
	$(BIN)/ruff format src tests benchmarks

benchmark: install
	$(BIN)/python benchmarks/ingest_preprocess.py

# Re-pin requirements.lock from the current environment (after changing pyproject.toml).
lock: install
	$(BIN)/python -m pip freeze --exclude-editable > requirements.lock

clean:
	rm -rf $(VENV) build dist *.egg-info
