"""Drift monitoring end to end: real MNIST digits through the real model server (inference
log on), then ``kedro run --env gcp --pipelines monitoring`` against the reference stored
with the registered version. Real test digits: no drift. The same digits rotated by 15°
(subtle) or inverted (gross): drift, naming the features that moved."""

from __future__ import annotations

import json
import time

import mlflow
import numpy as np
import pytest
import requests
import yaml
from kedro.framework.session import KedroSession
from kedro.framework.startup import bootstrap_project
from scipy import ndimage

from mnist_pipeline.monitoring.datasets import DriftReferenceDataset
from mnist_pipeline.pipelines.monitoring.nodes import DriftDetectedError, compute_drift_reference
from mnist_pipeline.serving import ServerProcess, ServerSettings
from tests.scoring.real_model import production_model

pytestmark = [pytest.mark.integration, pytest.mark.slow]

WINDOW = 1000
FIRST = 3000  # test images FIRST..FIRST+WINDOW (the batch-scoring test uses the first 2000)


@pytest.fixture(scope="module")
def model(tmp_path_factory, real_mnist_dir):
    return production_model(tmp_path_factory, real_mnist_dir)


@pytest.fixture(scope="module")
def stored_reference(model):
    """What the deploy pipeline does once the version is deployable: its reference, stored."""
    report = {"deployable": True, "model": {"name": model.name, "version": model.version}}
    reference = compute_drift_reference(
        model.train, report, {"registry_uri": model.registry_uri}, {"num_images": 5000, "seed": 0}
    )
    DriftReferenceDataset(registry_uri=model.registry_uri, name=model.name, alias=model.alias).save(
        reference
    )
    return reference


@pytest.fixture(scope="module")
def logging_server(model, tmp_path_factory):
    log = tmp_path_factory.mktemp("inference-log")
    settings = ServerSettings(port=0, inference_log={"path": str(log)})
    with ServerProcess(model.model_uri, model.registry_uri, settings) as server:
        yield server, log


def _send(server, images: np.ndarray, **headers: str) -> None:
    """POST the images in batches of 50; wait until the log has written all of them."""
    before = _logged(server)
    for start in range(0, len(images), 50):
        body = {"instances": images[start : start + 50].astype(int).tolist()}
        answer = requests.post(server.predict_url, json=body, headers=headers, timeout=60)
        answer.raise_for_status()
        assert answer.headers["X-Request-ID"]
    deadline = time.monotonic() + 60
    while _logged(server) < before + len(images) and time.monotonic() < deadline:
        time.sleep(0.05)  # the writer thread's handshake: its counter in the status route
    assert _logged(server) == before + len(images)


def _logged(server) -> int:
    status = requests.get(server.url + f"/v1/models/{server.info['name']}", timeout=10).json()
    assert status["inference_log"]["dropped"] == 0
    return status["inference_log"]["records"]


def _monitor(model, log, tmp_path, project_root, **params) -> tuple[dict, Exception | None]:
    variables = {
        "MLFLOW_PRODUCTION_TRACKING_URI": model.registry_uri,
        "MLFLOW_PRODUCTION_REGISTRY_URI": model.registry_uri,
        "MLFLOW_PRODUCTION_ARTIFACT_LOCATION": str(tmp_path / "run-artifacts"),
        "MNIST_DATA_ROOT": str(tmp_path / "data"),
        "MNIST_INFERENCE_LOG": str(log),
    }
    # Runtime parameters replace a whole top-level block: start from the configured one.
    monitoring = yaml.safe_load((project_root / "conf/base/parameters_monitoring.yml").read_text())
    runtime = {"monitoring": {**monitoring["monitoring"], **params}}
    error = None
    with pytest.MonkeyPatch.context() as patch:
        for key, value in variables.items():
            patch.setenv(key, value)
        bootstrap_project(project_root)
        with KedroSession.create(
            project_path=project_root, env="gcp", runtime_params=runtime
        ) as session:
            try:
                session.run(pipeline_names=["monitoring"])
            except Exception as exc:
                error = exc
            finally:
                run = mlflow.last_active_run()
                while mlflow.active_run():  # kedro-mlflow leaves a failed run active
                    mlflow.end_run()
    saved = tmp_path / "data/08_reporting/drift_report.json"
    if not saved.is_file():
        raise AssertionError("the monitoring run wrote no report") from error
    report = json.loads(saved.read_text())
    assert (tmp_path / "data/08_reporting/drift_report.png").stat().st_size > 1000
    logged = mlflow.MlflowClient(tracking_uri=model.registry_uri).get_run(run.info.run_id)
    assert logged.data.metrics["drift.drift"] == (1.0 if report["verdict"] == "drift" else 0.0)
    return report, error


def test_an_empty_log_is_a_clear_message(model, stored_reference, tmp_path, project_root):
    report, error = _monitor(model, tmp_path / "no-log-here", tmp_path, project_root)
    assert error is None
    assert report["verdict"] == "insufficient_data"
    assert "no inference log at" in report["message"]


def test_real_digits_do_not_drift_shifted_digits_do(
    model, stored_reference, logging_server, tmp_path, project_root
):
    server, log = logging_server
    digits = model.test["images"][FIRST : FIRST + WINDOW]
    _send(server, digits[:200], **{"X-Traffic-Source": "validation"})  # not live: left out

    _send(server, digits)
    calm, error = _monitor(model, log, tmp_path / "real", project_root)
    assert error is None and calm["verdict"] == "no_drift", calm["features"]
    assert calm["records"] == WINDOW and calm["model"]["version"] == model.version

    rotated = np.stack([ndimage.rotate(d.astype(np.float32), 15, reshape=False) for d in digits])
    _send(server, np.clip(rotated, 0, 255))
    subtle, error = _monitor(model, log, tmp_path / "rotated", project_root)
    assert error is None and subtle["verdict"] == "drift", subtle["features"]
    print("15° rotation:", subtle["message"])
    assert set(subtle["drifted_features"]) & {"bbox_width", "bbox_height", "probability"}

    _send(server, 255 - digits)
    gross, error = _monitor(model, log, tmp_path / "inverted", project_root, fail_on_drift=True)
    assert isinstance(error, DriftDetectedError)
    assert {"mean_intensity", "ink_fraction"} <= set(gross["drifted_features"])
    assert "mean_intensity" in str(error)
