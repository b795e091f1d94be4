"""`kedro run --pipelines training` in local mode, in process: the project's hook
starts Spark from spark.yml, the runner trains, the catalog saves the model, Spark stops."""

from __future__ import annotations

import json
import os

import numpy as np
import pytest
from kedro.framework.session import KedroSession
from kedro.framework.startup import bootstrap_project

from tests.mlflow_stores import empty_store
from tests.training.conftest import write_model_input

pytestmark = [pytest.mark.integration, pytest.mark.slow]


def test_training_pipeline_in_local_mode(tmp_path, real_mnist_dir, project_root, monkeypatch):
    from pyspark.sql import SparkSession

    model_input = write_model_input(real_mnist_dir, tmp_path / "data")
    (tmp_path / "data/05_model_input/fingerprint.json").write_text(
        json.dumps({"model_input": "pipeline-test-input", "splits": {}})
    )
    for name in [n for n in os.environ if n.startswith("MLFLOW_")]:
        monkeypatch.delenv(name)
    for key, value in {
        "MNIST_DATA_ROOT": str(tmp_path / "data"),
        "MLFLOW_SANDBOX_TRACKING_URI": empty_store(tmp_path / "sandbox.db"),
        "MLFLOW_SANDBOX_ARTIFACT_LOCATION": str(tmp_path / "sandbox-artifacts"),
        "TRAINING_MODE": "local",
        "SPARK_MASTER": "local[2]",
    }.items():
        monkeypatch.setenv(key, value)
    bootstrap_project(project_root)
    with KedroSession.create(
        project_path=project_root,
        env="azure",
        runtime_params={
            "training": {"epochs": 2, "batch_size": 64, "distribution": {"num_slots": 1}}
        },
    ) as session:
        session.run(pipeline_names=["training"])
    assert SparkSession.getActiveSession() is None  # the hook stopped it

    summary = json.loads((tmp_path / "data/08_reporting/training_summary.json").read_text())
    assert summary["mode"] == "local" and summary["num_workers"] == 1
    assert summary["images_per_s"] > 0

    import keras

    model = keras.saving.load_model(tmp_path / "data/06_models/mnist_cnn.keras")
    images = model_input["test_images"][..., np.newaxis].astype(np.float32)  # 0–255
    probabilities = model.predict(images, verbose=0)
    assert probabilities.shape == (len(images), 10)
    assert (probabilities.argmax(axis=1) == model_input["test_labels"]).mean() > 0.8
