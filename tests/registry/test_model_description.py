"""The registered model carries a description in the registry (and so in the MLflow UI)."""

from __future__ import annotations

from mlflow import MlflowClient

from mnist_pipeline.registry.store import MODEL_DESCRIPTION, _ensure_registered_model
from tests.mlflow_stores import empty_store


def test_a_new_or_undescribed_registered_model_gets_the_description(tmp_path):
    uri = empty_store(tmp_path / "registry.db")
    client = MlflowClient(tracking_uri=uri, registry_uri=uri)
    _ensure_registered_model(client, "mnist_cnn")
    assert client.get_registered_model("mnist_cnn").description == MODEL_DESCRIPTION
    client.create_registered_model("older")  # registered before descriptions existed
    _ensure_registered_model(client, "older")
    assert client.get_registered_model("older").description == MODEL_DESCRIPTION
    client.update_registered_model("older", description="edited by a person")
    _ensure_registered_model(client, "older")  # a description someone wrote is kept
    assert client.get_registered_model("older").description == "edited by a person"
