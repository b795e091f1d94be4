"""The whole lifecycle across the two clouds on the real MNIST, as `make run-cloud` runs it:
MNIST uploaded to abfs://, a sandbox run whose data path is on Azure Blob and whose MLflow
artifacts are proxied to wasbs://, promotion into a production server whose artifacts are on
gs://, then deploy and serve from there."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from mnist_pipeline.registry.model_env import DEFAULT_ENV_ROOT, env_root
from tests.conftest import PROJECT_ROOT
from tests.integration.scratch_project import project_copy
from tests.mlflow_stores import empty_store
from tools.cloud.run_cloud import ARTIFACT_STORE_KEYS, pipeline_env

pytestmark = [pytest.mark.integration, pytest.mark.slow]

ENV_ROOT = PROJECT_ROOT / DEFAULT_ENV_ROOT


def test_the_pipelines_environment_holds_no_artifact_store_key(emulators, monkeypatch):
    """Even when the caller's shell has them, the kedro commands get no artifact-store key:
    only the mlflow server processes do."""
    for key in ARTIFACT_STORE_KEYS:
        monkeypatch.setenv(key, "secret-of-the-caller")
    env = pipeline_env(emulators, "http://127.0.0.1:1", "http://127.0.0.1:2")
    assert not [key for key in ARTIFACT_STORE_KEYS if key in env]
    assert "secret-of-the-caller" not in json.dumps(env)
    assert env["MNIST_STORAGE_ROOT"].startswith("abfs://")


# The suite's accuracy guard (the training-speed issues' regression guard): the default
# configuration trained 1 epoch on the real MNIST reaches 98.9 %. Its learning rate runs one
# warm-up + cosine cycle per epoch, so a 1-epoch run is exactly the default's first epoch,
# which reached 99.13-99.26 % over 6 seeds (99.21 % with seed 42, the configuration's); the
# 99.0 % of the goal is a benchmark figure (docs/training.md): TensorFlow on CPU is not
# deterministic and the margin is a few images. The promotion gate is lowered to the guard
# to match; every other setting is `make run-cloud`'s default.
GUARD = 0.989
# The deploy uses the model environment `make install` built (a test never builds one: the
# project copy has no .mlflow-envs/ of its own, and a build here took 48-65 s).
KEDRO_ARGS = (
    f"--params training.epochs=1,promotion.gate.min_accuracy={GUARD},"
    "deploy_environment.build_if_missing=false"
)


def test_sandbox_on_azure_blob_to_production_on_gcs(real_mnist_dir, tmp_path):
    """`make run-cloud` as a user runs it, the default model trained for 1 epoch instead
    of 2: the whole lifecycle across the two clouds, and the accuracy guard."""
    project = project_copy(PROJECT_ROOT, tmp_path / "project")
    report = tmp_path / "report.json"
    env = {k: v for k, v in os.environ.items() if not k.startswith(("MLFLOW_", "MNIST_"))}
    env.update(
        CLOUD_DIR=str(tmp_path / "cloud"),
        MNIST_DATA_ROOT=str(tmp_path / "data"),  # local layers (reports) stay in the tmp folder
        MLFLOW_LOCAL_TRACKING_URI=empty_store(tmp_path / "local.db"),
        MLFLOW_ENV_ROOT=str(env_root(os.environ.get("MLFLOW_ENV_ROOT") or ENV_ROOT)),
    )
    completed = subprocess.run(
        [
            sys.executable, "-m", "tools.cloud.run_cloud",
            "--dir", str(tmp_path / "cloud"), "--mnist", str(real_mnist_dir),
            "--project", str(project), "--report", str(report), "--kedro-args", KEDRO_ARGS,
        ],
        cwd=PROJECT_ROOT, env=env, capture_output=True, text=True, timeout=2400, check=False,
    )  # fmt: skip
    output = completed.stdout + completed.stderr
    assert completed.returncode == 0, output[-6000:]
    result = json.loads(report.read_text())
    checks = result["checks"]
    assert len(checks) == 5 and all(checks.values()), checks
    print(f"stage times (s): {result['timings_s']}")
    reports = tmp_path / "data" / "08_reporting"
    accuracy = json.loads((reports / "evaluation_metrics.json").read_text())["test_accuracy"]
    print(f"default model, 1 epoch on the real MNIST: test accuracy {accuracy:.4f}")
    assert accuracy >= GUARD
    deployment = json.loads((reports / "deployment_report.json").read_text())
    assert deployment["deployable"] is True
    assert deployment["fresh_env"]["reused"] is True, deployment["fresh_env"]
    assert "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq" not in output
    assert "enabling autologging" not in output  # TensorFlow imported before Keras everywhere
