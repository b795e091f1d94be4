"""The suite's empty MLflow stores: a copy behaves as a store MLflow made itself."""

from __future__ import annotations

import mlflow

from tests.mlflow_stores import empty_store


def test_a_copy_gets_its_own_default_experiment_and_records_runs(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # MLflow's default artifact root is ./mlruns
    uri = empty_store(tmp_path / "stores" / "copy.db")
    client = mlflow.MlflowClient(tracking_uri=uri, registry_uri=uri)
    (default,) = client.search_experiments()
    assert default.experiment_id == "0"
    # The opener's artifact root, not the template's folder.
    assert "mlflow-empty-store" not in default.artifact_location
    assert str(tmp_path / "mlruns") in default.artifact_location
    run = client.create_run(default.experiment_id)
    client.log_param(run.info.run_id, "a", "1")
    client.create_registered_model("m")
    assert client.get_run(run.info.run_id).data.params == {"a": "1"}
    assert [m.name for m in client.search_registered_models()] == ["m"]


def test_a_store_already_there_is_kept(tmp_path):
    uri = empty_store(tmp_path / "kept.db")
    mlflow.MlflowClient(tracking_uri=uri).create_experiment("kept")
    assert empty_store(tmp_path / "kept.db") == uri
    names = {e.name for e in mlflow.MlflowClient(tracking_uri=uri).search_experiments()}
    assert names == {"Default", "kept"}
