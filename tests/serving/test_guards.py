"""Token, exposure, nesting, header-size and read-timeout guards over a real socket.

The app and uvicorn (with the guarded httptools protocol) run in this process around a
small fake predictor, so every test speaks real HTTP without loading TensorFlow; the
real server process is checked in tests/integration and test_orphans.
"""

from __future__ import annotations

import json
import logging
import socket
import threading
from collections.abc import Iterator
from contextlib import contextmanager

import numpy as np
import pytest
import requests

from mnist_pipeline.serving.__main__ import main as serve_main
from mnist_pipeline.serving.app import create_app
from mnist_pipeline.serving.guards import (
    ExposureError,
    check_exposure,
    json_depth,
    token_matches,
)
from mnist_pipeline.serving.server import ServerSettings, bind_socket, uvicorn_server

IMAGE = np.zeros((28, 28), int).tolist()
MODEL_INFO = {
    "name": "mnist_cnn",
    "alias": "production",
    "version": "3",
    "model_uri": "models:/mnist_cnn/3",
    "registry_uri": "sqlite:////srv/secret-place/production.db",
    "source": "/srv/secret-place/artifacts/1/abc/artifacts/model",
    "run_id": "abc",
}


class FakePredictor:
    """Answers digit 0 for every image (the guards, not the model, are under test)."""

    batches = images = 0

    async def predict(self, images: np.ndarray) -> np.ndarray:
        probabilities = np.zeros((len(images), 10), np.float32)
        probabilities[:, 0] = 1
        return probabilities

    def close(self) -> None:
        pass


@contextmanager
def serving(
    settings: ServerSettings, token: str | None = None, inference_log=None
) -> Iterator[tuple[str, int]]:
    """The app on uvicorn with ``settings``' guards, on 127.0.0.1 and a free port."""
    app = create_app(
        FakePredictor(), MODEL_INFO, settings, token=token, inference_log=inference_log
    )
    server = uvicorn_server(app, settings)
    sock = bind_socket("127.0.0.1", 0)  # listening already: connections queue until served
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    try:
        yield "127.0.0.1", sock.getsockname()[1]
    finally:
        server.should_exit = True
        thread.join(timeout=15)
        sock.close()


def _exchange(address: tuple[str, int], *parts: bytes) -> bytes:
    """Send ``parts`` (maybe an unfinished request), then read until the server closes."""
    with socket.create_connection(address, timeout=30) as client:
        for part in parts:
            client.sendall(part)
        received = b""
        while chunk := client.recv(65536):  # b"": the server closed the connection
            received += chunk
    return received


@pytest.fixture(scope="module")
def strict() -> Iterator[tuple[str, int]]:
    settings = ServerSettings(
        header_timeout_s=0.5, body_timeout_s=0.5, max_header_bytes=4096, max_json_depth=32
    )
    with serving(settings) as address:
        yield address


@pytest.mark.parametrize(
    "sent",
    [b"", b"POST /invocations HTTP/1.1\r\nHost: x\r\nContent-Le"],
    ids=["silent", "unfinished-headers"],
)
def test_headers_not_received_in_time_get_408_and_the_connection_is_closed(strict, sent) -> None:
    answer = _exchange(strict, sent)
    assert answer.startswith(b"HTTP/1.1 408 Request Timeout")
    assert b"request headers not received within 0.5 s" in answer


def test_a_trickled_body_gets_408_and_the_connection_is_closed(strict) -> None:
    head = b"POST /invocations HTTP/1.1\r\nHost: x\r\nContent-Length: 1000\r\n\r\n"
    answer = _exchange(strict, head, b'{"instances": [')
    assert answer.startswith(b"HTTP/1.1 408 Request Timeout")
    assert b"request body not received within 0.5 s" in answer


@pytest.mark.parametrize("end", [b"\r\n\r\n", b""], ids=["complete-headers", "one-endless-header"])
def test_oversized_headers_get_431(strict, end: bytes) -> None:
    head = b"GET /health HTTP/1.1\r\nHost: x\r\nX-Padding: " + b"a" * 8000 + end
    answer = _exchange(strict, head)
    assert answer.startswith(b"HTTP/1.1 431 Request Header Fields Too Large")
    assert b"exceed the limit of 4,096 bytes" in answer


def test_complete_requests_are_served_on_a_kept_alive_connection(strict) -> None:
    url = f"http://{strict[0]}:{strict[1]}"
    with requests.Session() as session:
        for _ in range(3):
            answer = session.post(f"{url}/invocations", json={"instances": [IMAGE]}, timeout=30)
            assert answer.status_code == 200, answer.text
            assert answer.json()["predictions"][0][0] == 1


@pytest.mark.parametrize("depth", [33, 100_000])
def test_deeply_nested_json_is_a_400_with_the_contract_message(strict, depth: int) -> None:
    url = f"http://{strict[0]}:{strict[1]}/invocations"
    answer = requests.post(url, data=b"[" * depth + b"]" * depth, timeout=30)
    assert answer.status_code == 400
    assert answer.json() == {
        "error": f"request body nests JSON {depth:,} levels deep, more than the limit of 32: "
        'send {"instances": [image, ...]} or {"inputs": images}'
    }
    unclosed = requests.post(url, data=b'{"instances": ' + b"[" * depth, timeout=30)
    assert unclosed.status_code == 400


def test_json_depth_ignores_brackets_inside_strings() -> None:
    assert json_depth(b'{"instances": [[[1, 2]]]}') == 4
    assert json_depth(b'{"a[[[": [[1]], "b\\"[[": "]]]]\\\\", "c": {}}') == 3
    assert json_depth(b"7") == 0
    assert json_depth(b"]]]") == 0


def test_token_is_required_on_predict_and_status_but_not_on_liveness() -> None:
    with serving(ServerSettings(), token="s3cret-token") as (host, port):
        url = f"http://{host}:{port}"
        body = {"instances": [IMAGE]}
        missing = requests.post(f"{url}/v1/models/mnist_cnn:predict", json=body, timeout=30)
        assert missing.status_code == 401
        assert missing.headers["www-authenticate"] == "Bearer"
        assert "no bearer token" in missing.json()["error"]
        wrong = requests.post(
            f"{url}/invocations", json=body, headers={"Authorization": "Bearer nope"}, timeout=30
        )
        assert wrong.status_code == 401
        assert "a wrong bearer token" in wrong.json()["error"]
        status = requests.get(f"{url}/v1/models/mnist_cnn", timeout=30)
        assert status.status_code == 401
        good = {"Authorization": "Bearer s3cret-token"}
        ok = requests.post(f"{url}/invocations", json=body, headers=good, timeout=30)
        assert ok.status_code == 200
        assert requests.get(f"{url}/v1/models/mnist_cnn", headers=good, timeout=30).ok
        assert requests.get(f"{url}/health", timeout=30).status_code == 200


def test_status_route_shows_no_filesystem_path(strict) -> None:
    answer = requests.get(f"http://{strict[0]}:{strict[1]}/v1/models/mnist_cnn", timeout=30)
    assert answer.status_code == 200
    assert "secret-place" not in answer.text and "sqlite" not in answer.text
    assert answer.json()["model"] == {
        "name": "mnist_cnn",
        "alias": "production",
        "version": "3",
        "run_id": "abc",
        "model_uri": "models:/mnist_cnn/3",
    }


def test_status_route_shows_the_inference_log_counters_but_not_its_path(tmp_path) -> None:
    from mnist_pipeline.serving.inference_log import InferenceLog, InferenceLogSettings

    folder = tmp_path / "secret-place" / "inference_log"
    log = InferenceLog(InferenceLogSettings(path=str(folder)), MODEL_INFO)
    try:
        with serving(ServerSettings(), inference_log=log) as (host, port):
            url = f"http://{host}:{port}"
            assert requests.post(f"{url}/invocations", json={"instances": [IMAGE]}, timeout=30).ok
            log.flush()
            answer = requests.get(f"{url}/v1/models/mnist_cnn", timeout=30)
    finally:
        log.close()
    assert answer.json()["inference_log"]["records"] == 1
    assert "secret-place" not in answer.text and str(tmp_path) not in answer.text


def test_token_comparison() -> None:
    assert token_matches("Bearer abc", "abc")
    assert token_matches("bearer  abc ", "abc")
    assert not token_matches("Bearer abcd", "abc")
    assert not token_matches("Basic abc", "abc")
    assert not token_matches(None, "abc")


def test_exposing_the_server_needs_a_token_or_an_explicit_flag(caplog) -> None:
    with pytest.raises(ExposureError, match=r"refusing to serve on 0\.0\.0\.0 without auth"):
        check_exposure("0.0.0.0", None, allow_unauthenticated=False)
    check_exposure("0.0.0.0", "a-token", allow_unauthenticated=False)
    check_exposure("127.0.0.1", None, allow_unauthenticated=False)
    assert not caplog.records
    with caplog.at_level(logging.WARNING):
        check_exposure("0.0.0.0", None, allow_unauthenticated=True)
    assert "SERVING ON 0.0.0.0 WITHOUT AUTHENTICATION" in caplog.text


def test_the_server_command_refuses_a_public_bind_without_a_token(monkeypatch, capsys) -> None:
    monkeypatch.delenv("MNIST_SERVER_TOKEN", raising=False)
    code = serve_main(["--model-uri", "models:/mnist_cnn@production", "--host", "0.0.0.0"])
    assert code == 1
    assert "refusing to serve on 0.0.0.0 without authentication" in capsys.readouterr().err


def test_limits_reach_the_server_command_line() -> None:
    settings = ServerSettings.model_validate(
        {"header_timeout_s": "2.5", "allow_unauthenticated": "true", "max_json_depth": 8}
    )
    assert settings.header_timeout_s == 2.5
    assert settings.allow_unauthenticated is True
    assert (settings.max_request_bytes, settings.max_batch_size, settings.max_json_depth) == (
        8 * 1024 * 1024,
        1024,
        8,
    )
    args = settings.cli_args()
    assert "--header-timeout-s=2.5" in args and "--allow-unauthenticated" in args
    assert "--max-json-depth=8" in args
    assert "--allow-unauthenticated" not in ServerSettings().cli_args()


def test_a_body_over_the_limit_gets_its_413_through_urllib_and_requests() -> None:
    """Clients that send the whole body before reading (urllib, requests) see the 413, not a
    connection reset: the server reads and discards the body (up to a bound) first."""
    import urllib.error
    import urllib.request

    body = b" " * (24 * 1024 * 1024)  # far beyond the socket buffers of a loopback connection
    with serving(ServerSettings(max_request_bytes=1_000_000)) as (host, port):
        url = f"http://{host}:{port}/v1/models/mnist_cnn:predict"
        request = urllib.request.Request(url, body, {"Content-Type": "application/json"})
        with pytest.raises(urllib.error.HTTPError) as declared:
            urllib.request.urlopen(request, timeout=60)
        assert declared.value.code == 413
        assert "exceeds the limit of 1,000,000 bytes" in json.loads(declared.value.read())["error"]

        def chunked():  # no Content-Length: the limit is found while streaming
            for start in range(0, len(body), 1024 * 1024):
                yield body[start : start + 1024 * 1024]

        streamed = requests.post(url, data=chunked(), timeout=60)
        assert streamed.status_code == 413
        assert "exceeds the limit of 1,000,000 bytes" in streamed.json()["error"]
        assert requests.get(f"http://{host}:{port}/health", timeout=30).ok
