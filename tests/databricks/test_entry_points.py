"""Every wheel entry point fails its Databricks task when it fails.

Each console script of the installed ``mnist_pipeline`` distribution is loaded from its
metadata and called as a ``python_wheel_task`` calls it (tests/databricks/wheel_task.py:
parameters in ``sys.argv``, no ``sys.exit`` wrapper, the return value ignored): a failure must
*raise*, a success must not.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tomllib

import numpy as np
import pytest

from tests.databricks import wheel_task
from tests.databricks.workspace_stub import TOKEN, serve
from tests.mlflow_stores import empty_store

PACKAGE = "mnist_pipeline"  # the bundle's python_wheel_task.package_name
TESTED = {"mnist-pipeline", "mnist-pipeline-databricks"}


def test_every_entry_point_of_the_wheel_is_tested_here(project_root):
    scripts = tomllib.loads((project_root / "pyproject.toml").read_text())["project"]["scripts"]
    assert set(wheel_task.entry_points(PACKAGE)) == set(scripts) == TESTED


@pytest.fixture
def workspace(monkeypatch, tmp_path):
    for name in list(os.environ):
        if name.startswith("DATABRICKS_"):
            monkeypatch.delenv(name)
    monkeypatch.setenv("DATABRICKS_CONFIG_FILE", str(tmp_path / "no-databrickscfg"))
    with serve() as (state, host):
        monkeypatch.setenv("DATABRICKS_HOST", host)
        monkeypatch.setenv("DATABRICKS_TOKEN", TOKEN)
        state.add_endpoint(
            "mnist-cnn",
            [
                {
                    "name": "mnist_cnn",
                    "entity_name": "prod.ml.mnist_cnn",
                    "entity_version": "1",
                    "workload_type": "CPU",
                    "workload_size": "Small",
                    "scale_to_zero_enabled": True,
                }
            ],
        )
        yield state


def test_databricks_steps_raise_when_they_fail(workspace, real_mnist_dir, capsys, tmp_path):
    smoke = ["smoke-test", "--endpoint", "mnist-cnn", "--data-dir", str(real_mnist_dir)]
    smoke += ["--count", "2"]
    workspace.answer = lambda body: [np.eye(10)[7].tolist() for _ in body["instances"]]
    # MNIST's first two test digits are 7 and 2: one wrong answer fails the task
    failed = wheel_task.call(PACKAGE, "mnist-pipeline-databricks", smoke)
    assert failed == wheel_task.Outcome("system_exit", 1) and failed.failed
    assert "answered digits [7, 7]" in capsys.readouterr().err

    answers = iter([7, 2])
    workspace.answer = lambda body: [np.eye(10)[next(answers)].tolist()]
    passed = wheel_task.call(PACKAGE, "mnist-pipeline-databricks", smoke)
    assert passed == wheel_task.Outcome("returned", "None") and not passed.failed

    # an endpoint update that fails in the workspace: the previous version keeps serving
    from mlflow import MlflowClient

    registry = empty_store(tmp_path / "registry.db")
    client = MlflowClient(tracking_uri=registry, registry_uri=registry)
    client.create_registered_model("prod.ml.mnist_cnn")
    client.create_model_version("prod.ml.mnist_cnn", source=str(tmp_path))
    client.create_model_version("prod.ml.mnist_cnn", source=str(tmp_path))
    client.set_registered_model_alias("prod.ml.mnist_cnn", "production", "2")
    workspace.polls, workspace.outcome = 0, "UPDATE_FAILED"
    update = ["update-endpoint", "--endpoint", "mnist-cnn", "--model-name", "prod.ml.mnist_cnn"]
    update += ["--registry-uri", registry, "--wait-s", "60"]
    failed = wheel_task.call(PACKAGE, "mnist-pipeline-databricks", update)
    assert failed == wheel_task.Outcome("system_exit", 1)
    assert "UPDATE_FAILED" in capsys.readouterr().err
    assert workspace.served_versions("mnist-cnn") == ["1"]

    wrong = wheel_task.call(PACKAGE, "mnist-pipeline-databricks", ["update-endpoint"])
    assert wrong == wheel_task.Outcome("system_exit", 2)  # argparse: a required flag missing


@pytest.mark.integration
def test_a_failing_kedro_run_raises(project_root, tmp_path):
    """`mnist-pipeline` (the sandbox and production stages) when a node fails: here ingestion
    from a source without the MNIST files, in a fresh process like a job cluster's."""
    empty = tmp_path / "no-mnist-here"
    empty.mkdir()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("MLFLOW_", "MNIST_"))}
    env |= {
        "MNIST_SOURCE": str(empty),
        "MNIST_DATA_ROOT": str(tmp_path / "data"),
        "MNIST_CACHE_DIR": str(tmp_path / "cache"),
        "MLFLOW_SANDBOX_TRACKING_URI": f"sqlite:///{tmp_path / 'sandbox.db'}",
        "KEDRO_DISABLE_TELEMETRY": "1",
        "PYTHONPATH": str(project_root),
    }
    parameters = ["--env", "azure", "--pipelines", "ingestion"]
    parameters += ["--conf-source", str(project_root / "conf")]
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "tests.databricks.wheel_task",
            PACKAGE,
            "mnist-pipeline",
            *parameters,
        ],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    lines = [line for line in result.stdout.splitlines() if line.startswith("OUTCOME ")]
    assert lines, result.stderr[-3000:]
    outcome = wheel_task.Outcome(**json.loads(lines[-1][len("OUTCOME ") :]))
    assert outcome.failed, outcome
    assert outcome == wheel_task.Outcome("system_exit", 1)
    assert "t10k-images-idx3-ubyte.gz" in result.stdout + result.stderr  # it says why
