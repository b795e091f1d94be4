"""A training-only `kedro run` (single_node) records its per-epoch metrics in MLflow *while* it
trains, and starts no Spark session.

Handshake: after the chief reports epoch 1, training waits until this test has read epoch 1's
figures from the MLflow store (or gives up after a deadline and the test fails), so they were
visible before the run ended, whatever the machine's speed.
"""

from __future__ import annotations

import json
import os
import time

import mlflow
import pytest
from kedro.framework.session import KedroSession
from kedro.framework.startup import bootstrap_project

from mnist_pipeline.training.progress import ProgressSender
from tests.mlflow_stores import empty_store
from tests.training.conftest import write_model_input

pytestmark = [pytest.mark.integration, pytest.mark.slow]

DEADLINE_S = 120


def _wait_for_metric(client, run_id: str, name: str) -> list:
    """The metric's history once it is there (polls the store until the deadline)."""
    deadline = time.monotonic() + DEADLINE_S
    while time.monotonic() < deadline:
        history = client.get_metric_history(run_id, name)
        if history:
            return history
        time.sleep(0.1)
    return []


def test_training_only_run_logs_epoch_metrics_live_without_spark(
    tmp_path, real_mnist_dir, project_root, monkeypatch
):
    from pyspark import SparkContext

    if SparkContext._active_spark_context is not None:
        pytest.skip("another test left a Spark context running")
    write_model_input(real_mnist_dir, tmp_path / "data")
    (tmp_path / "data/05_model_input/fingerprint.json").write_text(
        json.dumps({"model_input": "live-metrics-test-input", "splits": {}})
    )
    for name in [n for n in os.environ if n.startswith("MLFLOW_")]:
        monkeypatch.delenv(name)
    tracking_uri = empty_store(tmp_path / "sandbox.db")
    for key, value in {
        "MNIST_DATA_ROOT": str(tmp_path / "data"),
        "MLFLOW_SANDBOX_TRACKING_URI": tracking_uri,
        "MLFLOW_SANDBOX_ARTIFACT_LOCATION": str(tmp_path / "sandbox-artifacts"),
        "TRAINING_MODE": "single_node",
    }.items():
        monkeypatch.setenv(key, value)

    seen: dict = {}
    original_send = ProgressSender.send

    def send_then_wait_for_mlflow(self, **event):
        original_send(self, **event)
        if event.get("event") == "epoch" and event["epoch"] == 1:
            run = mlflow.active_run()  # kedro-mlflow's run, in the node's thread
            client = mlflow.MlflowClient(tracking_uri=tracking_uri)
            seen["run_id"] = run.info.run_id
            seen["history"] = _wait_for_metric(client, run.info.run_id, "epoch.val_accuracy")
            seen["status"] = client.get_run(run.info.run_id).info.status
            seen["spark"] = SparkContext._active_spark_context

    monkeypatch.setattr(ProgressSender, "send", send_then_wait_for_mlflow)
    bootstrap_project(project_root)
    with KedroSession.create(
        project_path=project_root,
        env="azure",
        runtime_params={
            "training": {
                "epochs": 2,
                "batch_size": 64,
                "model": {"conv_blocks": [{"filters": 8, "kernel_size": 3}], "dense_units": 32},
                "worker_threads": {"intra_op": 1, "inter_op": 1},
            }
        },
    ) as session:
        session.run(pipeline_names=["training"])

    # Seen mid-run: epoch 1's figure was in the store while the run was still RUNNING.
    assert [m.step for m in seen["history"]] == [0]
    assert seen["status"] == "RUNNING"
    assert seen["spark"] is None  # single_node: the hook started no Spark
    assert SparkContext._active_spark_context is None

    client = mlflow.MlflowClient(tracking_uri=tracking_uri)
    run = client.get_run(seen["run_id"])
    assert run.info.status == "FINISHED"
    history = json.loads((tmp_path / "data/08_reporting/training_history.json").read_text())
    for name in ("loss", "accuracy", "val_loss", "val_accuracy"):
        logged = client.get_metric_history(run.info.run_id, f"epoch.{name}")
        assert [m.step for m in logged] == [0, 1]  # once per epoch, not twice
        assert [m.value for m in logged] == pytest.approx(history[name])
