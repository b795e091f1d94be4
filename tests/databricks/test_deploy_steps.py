"""The deploy job's steps after validation, against real local HTTP servers.

A small stand-in of the Databricks Serving Endpoints REST API (GET endpoint, PUT config,
state moving IN_PROGRESS → NOT_UPDATING/READY) and of a serving endpoint's invocations
route; the alias resolves in a real (SQLite) MLflow registry.
"""

from __future__ import annotations

import gzip
import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import numpy as np
import pytest

from mnist_pipeline.databricks.__main__ import main
from mnist_pipeline.databricks.endpoint import (
    EndpointUpdateError,
    WorkspaceApi,
    update_endpoint,
    update_to_alias,
)
from mnist_pipeline.databricks.smoke import SmokeTestError, load_test_digits, smoke_test
from tests.mlflow_stores import empty_store

TOKEN = "test-token-not-a-secret"


class FakeWorkspace:
    """State of one serving endpoint as the workspace reports it."""

    def __init__(self, version: str = "1", outcome: str = "NOT_UPDATING") -> None:
        self.version, self.outcome = version, outcome
        self.puts: list[dict] = []
        self.polls_left = 0
        self.auth: set[str] = set()

    def endpoint(self) -> dict:
        updating = self.polls_left > 0
        self.polls_left = max(self.polls_left - 1, 0)
        update = "IN_PROGRESS" if updating else self.outcome if self.puts else "NOT_UPDATING"
        return {
            "name": "mnist-cnn",
            "state": {"ready": "READY", "config_update": update},
            "config": {
                "served_entities": [
                    {
                        "name": "mnist_cnn",
                        "entity_name": "prod.ml.mnist_cnn",
                        "entity_version": self.version,
                        "workload_size": "Small",
                        "workload_type": "CPU",
                        "scale_to_zero_enabled": True,
                        "state": {"deployment": "DEPLOYMENT_READY"},
                    }
                ],
                "traffic_config": {
                    "routes": [{"served_model_name": "mnist_cnn", "traffic_percentage": 100}]
                },
            },
        }


@pytest.fixture
def workspace() -> Iterator[tuple[FakeWorkspace, str]]:
    state = FakeWorkspace()

    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args):  # quiet
            pass

        def _answer(self, status: int, body: dict) -> None:
            data = json.dumps(body).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def _authorised(self) -> bool:
            state.auth.add(self.headers.get("Authorization", ""))
            if self.headers.get("Authorization") != f"Bearer {TOKEN}":
                self._answer(401, {"message": "Invalid access token."})
                return False
            return True

        def do_GET(self):
            if not self._authorised():
                return
            if self.path != "/api/2.0/serving-endpoints/mnist-cnn":
                self._answer(404, {"message": f"endpoint {self.path} does not exist"})
                return
            self._answer(200, state.endpoint())

        def do_PUT(self):
            if not self._authorised():
                return
            body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
            state.puts.append(body)
            state.version = body["served_entities"][0]["entity_version"]
            state.polls_left = 2
            self._answer(200, {"name": "mnist-cnn"})

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield state, f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


def test_endpoint_moves_to_the_version_and_keeps_its_settings(workspace):
    state, host = workspace
    result = update_endpoint(
        WorkspaceApi(host, TOKEN), "mnist-cnn", "prod.ml.mnist_cnn", "7", poll_s=0.01
    )
    assert result == {
        "endpoint": "mnist-cnn",
        "model": "prod.ml.mnist_cnn",
        "version": "7",
        "previous_versions": ["1"],
        "changed": True,
    }
    (put,) = state.puts
    (entity,) = put["served_entities"]
    assert entity == {
        "name": "mnist_cnn",
        "entity_name": "prod.ml.mnist_cnn",
        "entity_version": "7",
        "workload_size": "Small",
        "workload_type": "CPU",
        "scale_to_zero_enabled": True,
    }
    assert put["traffic_config"]["routes"][0]["traffic_percentage"] == 100
    assert state.polls_left == 0  # it waited through IN_PROGRESS
    again = update_endpoint(
        WorkspaceApi(host, TOKEN), "mnist-cnn", "prod.ml.mnist_cnn", "7", poll_s=0.01
    )
    assert again["changed"] is False and len(state.puts) == 1


def test_failed_update_wrong_model_and_bad_token_say_why(workspace):
    state, host = workspace
    state.outcome = "UPDATE_FAILED"
    with pytest.raises(EndpointUpdateError, match="UPDATE_FAILED"):
        update_endpoint(
            WorkspaceApi(host, TOKEN), "mnist-cnn", "prod.ml.mnist_cnn", "2", poll_s=0.01
        )
    with pytest.raises(EndpointUpdateError, match="not other_model"):
        update_endpoint(WorkspaceApi(host, TOKEN), "mnist-cnn", "other_model", "2", poll_s=0.01)
    with pytest.raises(EndpointUpdateError, match="401: Invalid access token") as caught:
        update_endpoint(WorkspaceApi(host, "wrong-token-value"), "mnist-cnn", "x", "2")
    assert "wrong-token-value" not in str(caught.value)
    assert "wrong-token-value" not in repr(WorkspaceApi(host, "wrong-token-value"))
    with pytest.raises(EndpointUpdateError, match="DATABRICKS_TOKEN not set"):
        WorkspaceApi.from_env({"DATABRICKS_HOST": host})


def test_update_follows_the_alias_in_a_real_registry(workspace, tmp_path, monkeypatch, capsys):
    from mlflow import MlflowClient

    state, host = workspace
    uri = empty_store(tmp_path / "registry.db")
    client = MlflowClient(tracking_uri=uri, registry_uri=uri)
    client.create_registered_model("prod.ml.mnist_cnn")
    for _ in range(3):
        client.create_model_version("prod.ml.mnist_cnn", source=str(tmp_path))
    client.set_registered_model_alias("prod.ml.mnist_cnn", "production", "2")

    result = update_to_alias(
        WorkspaceApi(host, TOKEN), "mnist-cnn", uri, "prod.ml.mnist_cnn", "production", poll_s=0.01
    )
    assert result["version"] == "2" and state.version == "2"
    with pytest.raises(EndpointUpdateError, match="@champion does not exist"):
        update_to_alias(
            WorkspaceApi(host, TOKEN), "mnist-cnn", uri, "prod.ml.mnist_cnn", "champion"
        )

    # the job's command line, as the deploy job's update_endpoint task runs it
    client.set_registered_model_alias("prod.ml.mnist_cnn", "production", "3")
    monkeypatch.setenv("DATABRICKS_HOST", host)
    monkeypatch.setenv("DATABRICKS_TOKEN", TOKEN)
    args = ["update-endpoint", "--endpoint", "mnist-cnn", "--model-name", "prod.ml.mnist_cnn"]
    args += ["--alias", "production", "--registry-uri", uri, "--poll-s", "0.01"]
    assert main(args) == 0
    assert json.loads(capsys.readouterr().out)["version"] == "3" and state.version == "3"
    assert TOKEN not in capsys.readouterr().err


@pytest.fixture
def digits(real_mnist_dir: Path) -> tuple[np.ndarray, np.ndarray]:
    return load_test_digits(real_mnist_dir, 5)


def _model_server(answers) -> tuple[ThreadingHTTPServer, list]:
    bodies: list = []

    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args):
            pass

        def do_POST(self):
            body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
            bodies.append(body)
            data = json.dumps({"predictions": answers(body)}).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server, bodies


def test_smoke_test_sends_raw_images_as_instances_and_checks_digits(digits, real_mnist_dir, capsys):
    images, labels = digits
    lookup = {
        np.asarray(image, dtype=np.uint8).tobytes(): int(label)
        for image, label in zip(images, labels, strict=True)
    }

    def right(body):
        return [
            np.eye(10)[lookup[np.asarray(x, dtype=np.uint8).tobytes()]].tolist()
            for x in body["instances"]
        ]

    server, bodies = _model_server(right)
    url = f"http://127.0.0.1:{server.server_address[1]}/serving-endpoints/mnist-cnn/invocations"
    try:
        result = smoke_test(url, images, labels, token_env=None)
        assert result.digits == labels.tolist() and result.correct == 5
        assert len(bodies) == 5
        for body, image in zip(bodies, images, strict=True):
            assert set(body) == {"instances"}
            assert np.array_equal(np.asarray(body["instances"]), image[np.newaxis])  # raw 0–255
        args = ["smoke-test", "--url", url, "--data-dir", str(real_mnist_dir), "--count", "3"]
        assert main([*args, "--token-env", ""]) == 0
        assert json.loads(capsys.readouterr().out)["digits"] == labels[:3].tolist()
    finally:
        server.shutdown()
        server.server_close()

    wrong, _ = _model_server(lambda body: [np.eye(10)[0].tolist() for _ in body["instances"]])
    url = f"http://127.0.0.1:{wrong.server_address[1]}/invocations"
    try:
        with pytest.raises(SmokeTestError, match=r"answered digits \[0, 0, 0, 0, 0\]"):
            smoke_test(url, images, labels, token_env=None)
    finally:
        wrong.shutdown()
        wrong.server_close()


def test_smoke_test_reads_the_cached_test_split(real_mnist_dir, tmp_path):
    images, _ = load_test_digits(real_mnist_dir, 2)
    assert images.shape == (2, 28, 28) and images.dtype == np.uint8
    (tmp_path / "t10k-images-idx3-ubyte.gz").write_bytes(gzip.compress(b"not idx"))
    (tmp_path / "t10k-labels-idx1-ubyte.gz").write_bytes(b"")
    with pytest.raises(ValueError, match="t10k-images"):
        load_test_digits(tmp_path, 2)
