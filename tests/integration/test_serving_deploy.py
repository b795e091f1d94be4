"""``kedro run --env gcp --pipelines deploy`` end to end against a real production registry.

The production registry is a real ``mlflow server`` (its own store and artifacts) holding
a real registered model (trained on real MNIST) with the alias ``production``. The
pipeline validates it in a real model server and writes the deployment report.
"""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path

import mlflow
import pytest
import requests
from kedro.framework.session import KedroSession
from kedro.framework.startup import bootstrap_project

from mnist_pipeline.pipelines.deploy.nodes import DeploymentRejectedError
from mnist_pipeline.registry import model_env
from mnist_pipeline.serving.model import load_keras_model
from tests.integration.mlflow_servers import start_mlflow_server
from tests.serving.registered_model import register

pytestmark = [pytest.mark.integration, pytest.mark.slow]

CHECKS = {"num_images": 500, "latency_requests": 50, "request_batch_size": 50}
# The model's own environment, built by `make model-env` (never inside a test).
ENV = {
    "build_if_missing": False,
    "env_root": str(model_env.env_root(os.environ.get("MLFLOW_ENV_ROOT") or ".mlflow-envs")),
    "num_images": 20,
}


@pytest.fixture(scope="module")
def production_registry(tmp_path_factory, registered):
    """A real mlflow server whose registry holds the model as mnist_cnn@production."""
    with start_mlflow_server(tmp_path_factory.mktemp("production"), name="production") as server:
        model = load_keras_model(registered.model_uri, registered.registry_uri)
        yield server, register(model, server.url)


def _deploy(
    project_root: Path, tmp_path: Path, mnist: Path, registry_url: str, **env: str
) -> tuple[Exception | None, Path]:
    """Run the deploy pipeline in env gcp; return the error (if any) and the reporting folder.

    ``fresh_env="yes"`` runs the check in the model's own environment (slow: one test does).
    """
    fresh = ENV if env.pop("fresh_env", None) == "yes" else {"enabled": False}
    data = tmp_path / "data"
    variables = {
        "MNIST_SOURCE": str(mnist),
        "MNIST_DATA_ROOT": str(data),
        "MNIST_CACHE_DIR": str(tmp_path / "raw"),
        "MLFLOW_PRODUCTION_TRACKING_URI": registry_url,
        "MLFLOW_PRODUCTION_REGISTRY_URI": registry_url,
        "MLFLOW_PRODUCTION_ARTIFACT_LOCATION": str(tmp_path / "artifacts"),
        **{key: str(value) for key, value in env.items() if not key.startswith("gate_")},
    }
    gate = {key[5:]: value for key, value in env.items() if key.startswith("gate_")}
    error = None
    uris = mlflow.get_tracking_uri(), mlflow.get_registry_uri()
    with pytest.MonkeyPatch.context() as patch:
        for key, value in variables.items():
            patch.setenv(key, value)
        bootstrap_project(project_root)
        with KedroSession.create(
            project_path=project_root,
            env="gcp",
            runtime_params={"deploy_validation": {**CHECKS, **gate}, "deploy_environment": fresh},
        ) as session:
            try:
                session.run(pipeline_names=["deploy"])
            except Exception as exc:
                error = exc
            finally:
                # kedro-mlflow leaves its run and URIs set process-wide: close and restore
                # them while the server is up, so later tests never talk to a stopped one.
                while mlflow.active_run():
                    mlflow.end_run()
                mlflow.set_tracking_uri(uris[0])
                mlflow.set_registry_uri(uris[1])
    return error, data / "08_reporting"


def test_promoted_model_is_validated_in_a_real_server(
    production_registry, project_root, tmp_path, real_mnist_dir, caplog
) -> None:
    server, version = production_registry
    caplog.set_level(logging.INFO, logger="mnist_pipeline.serving.validation")
    error, reports = _deploy(
        project_root,
        tmp_path,
        real_mnist_dir,
        server.url,
        gate_min_accuracy=0.8,
        # The runtime override is checked; the figure is reported, not asserted: a latency
        # gate in a test fails on a busy machine (it did at 500 ms).
        gate_max_latency_p50_ms=60_000,
        fresh_env="yes",
    )
    assert error is None, error
    report = json.loads((reports / "deployment_report.json").read_text())
    assert report["deployable"] is True, report["failures"]
    assert report["model"]["version"] == version
    assert report["model"]["model_uri"] == f"models:/mnist_cnn/{version}"
    checks = report["validation"]
    assert checks["num_images"] == 500
    assert checks["predictions_match"] is True
    assert checks["served_accuracy"] == checks["offline_accuracy"] >= 0.8
    assert report["gate"]["min_accuracy"] == 0.8
    assert report["gate"]["max_latency_p50_ms"] == 60_000
    latency = report["latency_ms"]["single_image"]
    assert latency["n"] == 50 and 0 < latency["p50"] <= latency["p95"] <= latency["p99"]
    print(f"single-image latency: p50 {latency['p50']} ms, p95 {latency['p95']} ms")
    fresh = report["fresh_env"]  # loaded and predicted in its own environment, as offline
    assert fresh["loaded"] and fresh["reused"] and fresh["predictions_match"], fresh
    summary = (reports / "deployment_summary.md").read_text()
    assert summary.startswith("# Deployment validation: DEPLOYABLE")
    card = mlflow.MlflowClient(server.url, server.url).get_model_version("mnist_cnn", version)
    assert "## Deploy validation\n\n**DEPLOYABLE**" in card.description
    with pytest.raises(requests.ConnectionError):  # the validation server was stopped
        requests.get(f"{report['server']['url']}/health", timeout=5)
    # The long, otherwise silent validation says what it is doing, step by step.
    steps = [r.getMessage() for r in caplog.records if r.name.endswith("serving.validation")]
    for step in ("own fresh environment", "starting the model server", "predicting over HTTP"):
        assert any(step in line for line in steps), steps


def test_a_model_below_the_gate_is_refused_with_a_report(
    production_registry, project_root, tmp_path, real_mnist_dir
) -> None:
    server, _ = production_registry
    error, reports = _deploy(
        project_root, tmp_path, real_mnist_dir, server.url, gate_min_accuracy=0.9999
    )
    assert isinstance(error, DeploymentRejectedError)
    assert "below the gate 0.9999" in str(error)
    report = json.loads((reports / "deployment_report.json").read_text())
    assert report["deployable"] is False
    assert report["validation"]["predictions_match"] is True  # served fine, just not good enough
    assert any("below the gate 0.9999" in failure for failure in report["failures"])
    assert "NOT DEPLOYABLE" in (reports / "deployment_summary.md").read_text()


def test_a_missing_alias_is_refused_with_a_report(
    production_registry, project_root, tmp_path, real_mnist_dir
) -> None:
    server, _ = production_registry
    error, reports = _deploy(
        project_root, tmp_path, real_mnist_dir, server.url, MLFLOW_PRODUCTION_ALIAS="candidate"
    )
    assert isinstance(error, DeploymentRejectedError)
    report = json.loads((reports / "deployment_report.json").read_text())
    assert report["deployable"] is False
    (failure,) = report["failures"]
    assert failure.startswith("resolving the model failed")
    assert "models:/mnist_cnn@candidate" in failure and server.url in failure
    assert "server" not in report  # no model server was started
