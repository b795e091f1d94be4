# mnist-pipeline: the two commands of the quick start, and a few helpers.
#   make run    create .venv, install what the sandbox job needs, run it (kedro run --env azure)
#   make test   create .venv, install everything (the cloud and test extras, Azurite, the
#               Databricks replica, the model's own environment), run lint and the whole suite
SHELL := /bin/bash
PYTHON ?= python3.11
VENV ?= .venv
BIN := $(VENV)/bin
# kedro-telemetry must never prompt or phone home.
export KEDRO_DISABLE_TELEMETRY := 1
export DO_NOT_TRACK := 1
# SPARK_LOCAL_IP: the project defaults it to 127.0.0.1 itself, only for a local master
# (runtime_env.default_spark_local_ip), never for a real cluster.

# The install's independent parts run side by side (npm's Azurite next to the Python stack, the
# Databricks replica next to the model environment): about a minute less of `make test` on 2 cores.
MAKEFLAGS += --jobs=3

.PHONY: install azurite model-env run test lint format benchmark lock clean cloud-up cloud-down run-cloud bundle dbr-replica databricks-lock

# One .venv, installed in two steps. $(VENV)/.installed-run: what `kedro run --env azure` needs
# (the package and its `local` extra: Spark, TensorFlow, MLflow); $(VENV)/.installed adds the
# `cloud` and `test` extras into the same venv (make test, the cloud run, the bundle, the lock).
# pip installs uv (pinned by the lock), uv installs the pinned stack: in parallel and with the
# bytecode compiled ahead, as pip does (pip alone took about 3.5 minutes of CI's install; and
# without .pyc files each `import tensorflow` compiles it again where PYTHONDONTWRITEBYTECODE
# is set). uv compiles only the packages it installs, so the second step compiles only its own.
# --offline first: every pin is exact, so a warm package cache resolves to the same versions,
# and uv skips its revalidation round (it re-downloaded every stale file here and rebuilt
# pyspark's wheel from its sdist: about 100 s of a fresh install, 9 s offline); a cache that
# lacks a pin makes the offline try fail at once, before installing anything, and the index is
# used.
UV_INSTALL = $(BIN)/uv pip install --quiet --python $(BIN)/python --compile-bytecode -c requirements.lock
define uv_install
	$(UV_INSTALL) --offline $(1) 2>/dev/null || { \
		echo "the package cache lacks some of the lock's pins: installing from the index"; \
		$(UV_INSTALL) $(1); }
endef
RUN_PACKAGES := -e ".[local]"
ALL_PACKAGES := -e ".[local,cloud,test]"

$(VENV)/.installed-run: pyproject.toml requirements.lock
	@command -v $(PYTHON) >/dev/null || { echo "$(PYTHON) not found: install Python 3.11" >&2; exit 1; }
	@command -v java >/dev/null || { echo "java not found: install a Java 17 runtime (Spark needs it)" >&2; exit 1; }
	[ -x $(BIN)/python ] || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade "pip==25.3" "$$(grep '^uv==' requirements.lock)"
	$(call uv_install,$(RUN_PACKAGES))
	touch $@

$(VENV)/.installed: $(VENV)/.installed-run
	$(call uv_install,$(ALL_PACKAGES))
	touch $@

# Azurite (the Azure Blob storage emulator of the cloud run and its tests), pinned by
# tools/cloud/package-lock.json; node_modules stays out of git.
AZURITE := tools/cloud/node_modules/.bin/azurite-blob
$(AZURITE): tools/cloud/package.json tools/cloud/package-lock.json
	@command -v npm >/dev/null || { echo "npm not found: install Node.js 20+ (Azurite, the Azure storage emulator, needs it)" >&2; exit 1; }
	npm ci --prefix tools/cloud --prefer-offline --no-audit --no-fund --loglevel=error
	touch $@

azurite: $(AZURITE)

# A replica of the Databricks job clusters' Python (Runtime 15.4 LTS ML: the release notes'
# library versions, tools/databricks/runtime-15.4-lts-ml.toml), the project's wheel installed
# on it as a cluster installs its libraries (requirements-databricks.txt, then the wheel);
# tests/databricks run the bundle's tasks with it (docs/databricks.md, "Runtimes").
DBR_VENV ?= .dbr-venv
DBR_RUNTIME ?= tools/databricks/runtime-15.4-lts-ml.toml
$(DBR_VENV)/replica.json: $(VENV)/.installed pyproject.toml requirements-databricks.txt $(DBR_RUNTIME) tools/databricks/replica.py $(shell find src -name '*.py' 2>/dev/null)
	$(BIN)/python -m tools.databricks.replica --runtime $(DBR_RUNTIME) --target $(DBR_VENV)

dbr-replica: $(DBR_VENV)/replica.json

# Re-resolve the clusters' lock after changing pyproject.toml's dependencies or the data file.
databricks-lock: $(VENV)/.installed
	$(BIN)/python -m tools.databricks.replica lock --runtime $(DBR_RUNTIME)

# The registered model's own fresh environment (its pinned requirements only, no project), built
# with uv into .mlflow-envs/ and reused by `mlflow models serve`, the deploy pipeline and the tests.
MODEL_ENV_ROOT ?= .mlflow-envs
$(MODEL_ENV_ROOT)/.built: $(VENV)/.installed requirements.lock
	$(BIN)/python -m mnist_pipeline.registry.model_env $(MODEL_ENV_ROOT)
	touch $@

model-env: $(MODEL_ENV_ROOT)/.built

install: $(VENV)/.installed $(AZURITE) $(DBR_VENV)/replica.json $(MODEL_ENV_ROOT)/.built

# Regenerate the Asset Bundle's resources/*.yml from the pipelines (overwrites them).
bundle: $(VENV)/.installed
	$(BIN)/python -m mnist_pipeline.databricks.bundle

# The sandbox job needs only .installed-run: not Azurite, the Databricks replica or the model's
# environment (the deploy check builds that one itself when it is missing; `make model-env`).
run: $(VENV)/.installed-run
	$(BIN)/kedro run --env azure

# Both clouds' object storage on 127.0.0.1 (Azurite, fake-gcs-server) and the whole lifecycle
# across them: sandbox on Azure Blob, production on GCS (docs/cloud.md). CLOUD_DIR=.cloud
cloud-up: $(VENV)/.installed $(AZURITE)
	$(BIN)/python -m tools.cloud.emulators up

cloud-down:
	$(BIN)/python -m tools.cloud.emulators down

run-cloud: $(VENV)/.installed $(AZURITE) $(MODEL_ENV_ROOT)/.built
	$(BIN)/python -m tools.cloud.run_cloud

# The suite on every core (pytest-xdist; one test file per worker at a time, so a file's
# fixtures are built once). TEST_WORKERS=0 runs it in one process.
TEST_WORKERS ?= auto
test: install lint
	$(BIN)/python -m pytest -n $(TEST_WORKERS) --dist loadfile $(PYTEST_ARGS)

lint: install
	$(BIN)/ruff check src tests benchmarks tools
	$(BIN)/ruff format --check src tests benchmarks tools

format: install
	$(BIN)/ruff check --fix src tests benchmarks tools
	$(BIN)/ruff format src tests benchmarks tools

benchmark: install
	$(BIN)/python benchmarks/ingest_preprocess.py

# Re-pin requirements.lock from the current environment (after changing pyproject.toml).
lock: install
	$(BIN)/python -m pip freeze --exclude-editable > requirements.lock

clean:
	rm -rf $(VENV) $(DBR_VENV) build dist *.egg-info
