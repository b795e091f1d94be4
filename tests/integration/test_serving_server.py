"""The real model server (a child process on 127.0.0.1) answering real HTTP requests.

Every bad payload gets a 4xx with a message saying what was wrong, and the server
keeps serving correct answers afterwards.
"""

from __future__ import annotations

import json
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest
import requests

from mnist_pipeline.serving.model import load_keras_model

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def offline(registered):
    """The registered model's own predictions on the first 64 test images."""
    model = load_keras_model(registered.model_uri, registered.registry_uri)
    images = registered.test_images[:64]
    return images, model.predict(images[..., None].astype(np.float32), verbose=0)


def _served(url: str, body: dict) -> np.ndarray:
    answer = requests.post(url, json=body, timeout=30)
    assert answer.status_code == 200, answer.text
    assert answer.headers["content-type"].startswith("application/json")
    return np.asarray(answer.json()["predictions"], dtype=np.float32)


def _assert_still_serving(server, offline) -> None:
    images, expected = offline
    served = _served(server.predict_url, {"instances": images[:2].tolist()})
    np.testing.assert_allclose(served, expected[:2], atol=1e-5)


def test_row_and_columnar_formats_answer_offline_predictions(model_server, offline) -> None:
    images, expected = offline
    rows = _served(model_server.predict_url, {"instances": images.tolist()})
    columns = _served(model_server.predict_url, {"inputs": images[..., None].tolist()})
    assert rows.shape == (64, 10)
    np.testing.assert_allclose(rows, expected, atol=1e-5)
    np.testing.assert_allclose(columns, expected, atol=1e-5)
    np.testing.assert_array_equal(rows.argmax(1), expected.argmax(1))


@pytest.mark.parametrize(
    "path",
    ["/invocations", "/serving-endpoints/mnist_cnn/invocations", "/v1/models/mnist_cnn:predict"],
)
def test_mlflow_and_databricks_paths_answer_too(model_server, offline, path: str) -> None:
    images, expected = offline
    served = _served(model_server.url + path, {"instances": images[:3].tolist()})
    np.testing.assert_allclose(served, expected[:3], atol=1e-5)


def test_concurrent_requests_each_get_their_own_answer(model_server, offline) -> None:
    images, expected = offline

    def ask(index: int) -> np.ndarray:
        return _served(model_server.predict_url, {"instances": [images[index].tolist()]})[0]

    with ThreadPoolExecutor(max_workers=8) as pool:
        answers = list(pool.map(ask, range(64)))
    np.testing.assert_allclose(np.stack(answers), expected, atol=1e-5)


BAD_BODIES = {
    "invalid JSON": (b'{"instances": [', 400, "not valid JSON"),
    "not an object": (b"[[0, 1]]", 400, "must be a JSON object"),
    "no instances or inputs": (b'{"data": [1]}', 400, 'exactly one of "instances"'),
    "wrong shape": (b'{"instances": [[[0, 1], [2, 3]]]}', 400, "found (1, 2, 2)"),
    "bare image as instances": (
        json.dumps({"instances": np.zeros((28, 28), int).tolist()}).encode(),
        400,
        "list of 28 × 28",
    ),
    "strings": (b'{"inputs": [["a", "b"]]}', 400, "must be numbers"),
    "NaN": (
        json.dumps({"instances": [np.full((28, 28), np.nan).tolist()]}).encode(),
        400,
        "finite",
    ),
    "infinity": (
        json.dumps({"inputs": np.full((28, 28), np.inf).tolist()}).encode(),
        400,
        "finite",
    ),
    "out of range": (
        json.dumps({"inputs": np.full((28, 28), 300).tolist()}).encode(),
        400,
        "[0, 255]",
    ),
    "empty list": (b'{"instances": []}', 400, "empty list"),
    "too many images": (
        json.dumps({"instances": np.zeros((65, 28, 28), int).tolist()}).encode(),
        413,
        "exceeds the limit of 64",
    ),
    "oversized body": (b'{"instances": [' + b" " * 1_200_000 + b"]}", 413, "exceeds the limit"),
    "unknown signature": (b'{"inputs": [], "signature_name": "x"}', 400, "signature_name"),
}


@pytest.mark.parametrize("case", list(BAD_BODIES))
def test_bad_payload_gets_4xx_with_reason_and_server_keeps_serving(
    model_server,
    offline,
    case: str,
) -> None:
    body, status, expected = BAD_BODIES[case]
    answer = requests.post(
        model_server.predict_url,
        data=body,
        headers={"Content-Type": "application/json"},
        timeout=30,
    )
    assert answer.status_code == status, answer.text
    assert expected in answer.json()["error"]
    _assert_still_serving(model_server, offline)


def test_chunked_oversized_body_is_refused(model_server, offline) -> None:
    def chunks():
        yield b'{"instances": ['
        for _ in range(30):
            yield b" " * 50_000
        yield b"]}"

    answer = requests.post(model_server.predict_url, data=chunks(), timeout=30)
    assert answer.status_code == 413
    assert "exceeds the limit of 1,000,000 bytes" in answer.json()["error"]
    _assert_still_serving(model_server, offline)


def test_routes_status_and_refusals(model_server) -> None:
    status = requests.get(f"{model_server.url}/v1/models/mnist_cnn", timeout=10).json()
    assert status["model_version_status"][0]["state"] == "AVAILABLE"
    assert status["model"]["version"] == model_server.info["version"]
    assert requests.get(f"{model_server.url}/ping", timeout=10).status_code == 200
    other = requests.post(f"{model_server.url}/v1/models/other:predict", json={}, timeout=10)
    assert other.status_code == 404
    assert "serves 'mnist_cnn'" in other.json()["error"]
    missing = requests.get(f"{model_server.url}/nope", timeout=10)
    assert missing.status_code == 404
    assert "POST /v1/models/mnist_cnn:predict" in missing.json()["error"]
    wrong_method = requests.get(model_server.predict_url, timeout=10)
    assert wrong_method.status_code == 405
