"""Sandbox → production promotion between two real ``mlflow server`` processes.

Two servers that share no storage: the sandbox (where ``kedro run --env azure`` tracks and
registers) and production (the promotion target). The module's tests share the pair
(``mlflow_servers``) and keep apart by name: each registers its own model (version numbers
start at 1 for it), tracks into its own experiments and artifact folders, and plants secrets
of its own. The runs go through a Kedro session of the evaluation + promotion pipelines on a
tiny model trained for real on a slice of MNIST.
"""

from __future__ import annotations

import json
import logging
import os
import uuid
from pathlib import Path

import keras
import mlflow
import numpy as np
import pytest

from mnist_pipeline.registry import GateRefusedError, RegistryUnreachableError
from mnist_pipeline.registry.model import predict_images
from tests.integration import promotion_project
from tests.integration.mlflow_servers import live_group_members

pytestmark = [pytest.mark.integration, pytest.mark.slow]

LOW_FLOOR = {"promotion": {"gate": {"min_accuracy": 0.5}}}


def _never_log(kind: str) -> str:
    """A value that must never reach a log, a tag, a parameter or an artifact: unique to the
    test, so that a search of the shared stores finds this test's leaks only."""
    return f"{kind}-never-log-{uuid.uuid4().hex}"


@pytest.fixture
def password() -> str:
    """A password someone wrote into the production tracking URI (the server ignores it)."""
    return _never_log("pw")


def _with_password(url: str, password: str) -> str:
    return url.replace("http://", f"http://bot:{password}@")


@pytest.fixture
def workspace(  # noqa: PLR0917
    tmp_path, monkeypatch, mlflow_servers, mlflow_names, tiny_model, mnist_slices
):
    """A project copy whose sandbox and production are the two servers; inputs seeded."""
    for name in list(os.environ):
        if name.startswith(("MLFLOW_", "DATABRICKS_")):
            monkeypatch.delenv(name)
    monkeypatch.setenv("MNIST_DATA_ROOT", str(tmp_path / "data"))
    monkeypatch.setenv("MLFLOW_SANDBOX_TRACKING_URI", mlflow_servers.sandbox.url)
    # Proxied artifacts: the client uploads over HTTP, the server stores them.
    artifacts = f"mlflow-artifacts:/{mlflow_names.artifacts}"
    monkeypatch.setenv("MLFLOW_SANDBOX_ARTIFACT_LOCATION", f"{artifacts}/sandbox-runs")
    monkeypatch.setenv("MLFLOW_PRODUCTION_TRACKING_URI", mlflow_servers.production.url)
    monkeypatch.setenv("MLFLOW_PRODUCTION_ARTIFACT_LOCATION", f"{artifacts}/copies")
    # This test's own names in the servers the module's tests share.
    monkeypatch.setenv("MLFLOW_SANDBOX_MODEL_NAME", mlflow_names.model)
    monkeypatch.setenv("MLFLOW_PRODUCTION_MODEL_NAME", mlflow_names.model)
    monkeypatch.setenv("MLFLOW_SANDBOX_EXPERIMENT", mlflow_names.experiment)
    monkeypatch.setenv("MLFLOW_PRODUCTION_PROMOTION_EXPERIMENT", mlflow_names.production_experiment)
    project = promotion_project.make_project(tmp_path)
    promotion_project.seed_trained_candidate(
        project, "azure", tiny_model, mnist_slices["test"], "a" * 64
    )
    return project


def _client(server) -> mlflow.MlflowClient:
    return mlflow.MlflowClient(tracking_uri=server.url, registry_uri=server.url)


def _versions(server, model: str) -> list[str]:
    return sorted(str(v.version) for v in _client(server).search_model_versions(f"name='{model}'"))


def _alias(server, model: str, alias: str) -> str | None:
    try:
        return str(_client(server).get_model_version_by_alias(model, alias).version)
    except mlflow.exceptions.MlflowException:
        return None


def _report(tmp_path: Path, name: str) -> dict:
    return json.loads((tmp_path / "data" / "08_reporting" / f"{name}.json").read_text())


def _run_id(server, experiment: str) -> str:
    """The newest run of the test's sandbox experiment (the Kedro run)."""
    client = _client(server)
    ids = [client.get_experiment_by_name(experiment).experiment_id]
    return client.search_runs(ids, order_by=["attributes.start_time DESC"])[0].info.run_id


def _files_containing(root: Path, needle: bytes) -> list[Path]:
    return [p for p in root.rglob("*") if p.is_file() and needle in p.read_bytes()]


def test_azure_run_promotes_a_verified_copy_that_serves_without_the_sandbox(  # noqa: PLR0917
    workspace, tmp_path, monkeypatch, mlflow_servers, mlflow_names, password, mnist_slices,
    caplog, capfd,
):  # fmt: skip
    sandbox, production = mlflow_servers.sandbox, mlflow_servers.production
    model = mlflow_names.model
    secrets = {"MLFLOW_TRACKING_TOKEN": _never_log("tok"), "DATABRICKS_TOKEN": _never_log("dapi")}
    for name, value in secrets.items():
        monkeypatch.setenv(name, value)
    monkeypatch.setenv("MLFLOW_PRODUCTION_TRACKING_URI", _with_password(production.url, password))
    caplog.set_level(logging.DEBUG)

    promotion_project.run(workspace, "azure", runtime_params=LOW_FLOOR)

    report = _report(tmp_path, "promotion_report")
    assert report["action"] == "copied"
    assert _alias(production, model, "production") == report["version"] == "1"
    assert _alias(sandbox, model, "champion") == "1"
    version = _client(production).get_model_version(model, "1")
    metrics = _report(tmp_path, "evaluation_metrics")
    assert version.tags["lineage.verified"] == "true"
    assert version.tags["lineage.source_registry_uri"] == sandbox.url
    assert version.tags["lineage.source_version"] == "1"
    assert version.tags["lineage.data_fingerprint"] == "a" * 64
    assert len(version.tags["lineage.git_commit"]) >= 7
    assert float(version.tags["metric.test_accuracy"]) == pytest.approx(metrics["test_accuracy"])
    # The copy lives in production's own storage.
    assert list((production.artifacts_destination / mlflow_names.artifacts).rglob("MLmodel"))

    # A second promotion of the same source version creates nothing and moves nothing.
    promotion_project.run(workspace, "azure", runtime_params=LOW_FLOOR)
    assert _report(tmp_path, "promotion_report")["action"] == "noop"
    assert _versions(production, model) == ["1"]
    assert _versions(sandbox, model) == ["1"]

    # No credential value in any log, tag, parameter, database or artifact (the stores'
    # databases hold the runs' parameters and tags; artifacts are files under their roots).
    output = capfd.readouterr()
    logs = caplog.text + output.out + output.err
    params = _client(sandbox).get_run(_run_id(sandbox, mlflow_names.experiment)).data
    assert params.params["promotion.production.tracking_uri"] == (
        production.url.replace("http://", "http://bot:***@")
    )
    for value in [*secrets.values(), password]:
        assert value not in logs
        for root in (sandbox.root, production.root, tmp_path / "data", workspace):
            assert _files_containing(root, value.encode()) == []

    # Production serves with the sandbox gone: load by alias from production only.
    group = sandbox.process.pid
    assert live_group_members(group)  # the server and its uvicorn worker
    sandbox.stop()
    assert not sandbox.is_healthy() and live_group_members(group) == []
    with promotion_project.mlflow_state():
        mlflow.set_tracking_uri(production.url)
        mlflow.set_registry_uri(production.url)
        served = mlflow.pyfunc.load_model(f"models:/{model}@production")
    test = mnist_slices["test"]
    probabilities = served.predict(test["images"].astype(np.float32))  # the signature
    accuracy = float((probabilities.argmax(axis=1) == test["labels"]).mean())
    assert accuracy == pytest.approx(metrics["test_accuracy"])
    np.testing.assert_allclose(
        predict_images(served, test["images"][:5, :, :, np.newaxis]), probabilities[:5], atol=1e-6
    )


def test_refusal_and_unreachable_production_leave_production_untouched(  # noqa: PLR0917
    workspace, tmp_path, monkeypatch, mlflow_servers, mlflow_names, password, tiny_model,
    caplog, capfd,
):  # fmt: skip
    sandbox, production = mlflow_servers.sandbox, mlflow_servers.production
    model_name = mlflow_names.model
    promotion_project.run(workspace, "azure", runtime_params=LOW_FLOOR)
    assert _alias(production, model_name, "production") == "1"

    # A worse challenger: the champion's weights, its classifier blurred with noise.
    model, _ = tiny_model
    worse = keras.models.clone_model(model)
    rng = np.random.default_rng(0)
    weights = model.get_weights()
    weights[-2] = weights[-2] + rng.normal(0, 0.2, weights[-2].shape).astype(np.float32)
    worse.set_weights(weights)
    promotion_project.seed_inputs(workspace, "azure", {"trained_model": worse})

    # A floor it clears, so that the champion comparison alone refuses it.
    any_floor = {"promotion": {"gate": {"min_accuracy": 0.1}}}
    with pytest.raises(GateRefusedError, match="refused by the quality gate"):
        promotion_project.run(workspace, "azure", runtime_params=any_floor)
    verdict = _report(tmp_path, "gate_verdict")
    assert not verdict["passed"]
    assert [c["check"] for c in verdict["checks"] if not c["passed"]] == ["champion"]
    assert verdict["champion_version"] == "1" and verdict["candidate_version"] == "2"
    assert _alias(sandbox, model_name, "champion") == "1"
    assert _versions(production, model_name) == ["1"]
    assert _alias(production, model_name, "production") == "1"

    # Production down: a clear error naming it, and nothing moves anywhere.
    production.stop()
    monkeypatch.setenv("MLFLOW_PRODUCTION_TRACKING_URI", _with_password(production.url, password))
    disabled = {"promotion": {"gate": {"mode": "disabled", "min_accuracy": 0.5}}}
    with pytest.raises(RegistryUnreachableError, match=r"production .* is unreachable") as error:
        promotion_project.run(workspace, "azure", runtime_params=disabled)
    assert production.url.replace("http://", "http://bot:***@") in str(error.value)
    # Nothing of the failure (message, cause, traceback, logs) repeats the password.
    assert error.value.__cause__ is None or password not in str(error.value.__cause__)
    output = capfd.readouterr()
    assert password not in caplog.text + output.out + output.err
    assert _files_containing(sandbox.root, password.encode()) == []
    assert _alias(sandbox, model_name, "champion") == "1"
    # Read production's own store directly (its server is down): nothing was written.
    store = mlflow.MlflowClient(
        tracking_uri=production.backend_store_uri, registry_uri=production.backend_store_uri
    )
    versions = store.search_model_versions(f"name='{model_name}'")
    assert [str(v.version) for v in versions] == ["1"]
    assert str(store.get_model_version_by_alias(model_name, "production").version) == "1"
