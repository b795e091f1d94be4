"""The client's HTTP side against real (scripted) HTTP servers on 127.0.0.1."""

from __future__ import annotations

import socket
import time

import numpy as np
import pytest
from requests import Session

from mnist_pipeline.client.http import (
    ClientError,
    ServerRefusedError,
    ServerUnavailableError,
    endpoint_url,
    is_loopback_host,
    post_images,
)
from tests.client.stub_server import stub_server

IMAGES = np.zeros((2, 28, 28), dtype=np.uint8)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_sends_instances_and_reads_predictions() -> None:
    with stub_server([(200, "predict")]) as stub:
        probabilities = post_images(f"{stub.url}/v1/models/m:predict", IMAGES, token_env=None)
    assert probabilities.shape == (2, 10)
    assert probabilities.argmax(axis=1).tolist() == [3, 3]
    (request,) = stub.requests
    assert request.path == "/v1/models/m:predict"
    assert np.asarray(request.body["instances"]).shape == (2, 28, 28)
    assert "Authorization" not in request.headers


def test_bearer_token_comes_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MY_DATABRICKS_TOKEN", "dapi-test-token")
    with stub_server([(200, "predict")]) as stub:
        url = f"{stub.url}/serving-endpoints/mnist/invocations"
        post_images(url, IMAGES, token_env="MY_DATABRICKS_TOKEN")
    assert stub.requests[0].headers["Authorization"] == "Bearer dapi-test-token"
    assert stub.requests[0].path == "/serving-endpoints/mnist/invocations"


def test_bare_host_gets_the_invocations_path() -> None:
    assert endpoint_url("http://127.0.0.1:8501") == "http://127.0.0.1:8501/invocations"
    assert endpoint_url("https://h/serving-endpoints/x/invocations").endswith("/x/invocations")
    with pytest.raises(ClientError, match="invalid server URL"):
        endpoint_url("localhost:8501")


def test_retries_5xx_with_backoff_until_the_server_answers() -> None:
    answers = [(503, {"error": "warming up"}), (500, {"error": "oops"}), (200, "predict")]
    with stub_server(answers) as stub:
        began = time.perf_counter()
        probabilities = post_images(stub.url, IMAGES, retries=3, backoff_s=0.1, token_env=None)
        waited = time.perf_counter() - began
    assert len(stub.requests) == 3
    assert probabilities.shape == (2, 10)
    assert waited >= 0.1 + 0.2  # backoff doubled between the two retries


def test_gives_up_after_the_retries_with_the_last_server_error() -> None:
    with (
        stub_server([(503, {"error": "model is loading"})]) as stub,
        pytest.raises(ServerUnavailableError, match="model is loading") as caught,
    ):
        post_images(stub.url, IMAGES, retries=2, backoff_s=0.01, token_env=None)
    assert len(stub.requests) == 3
    assert "after 3 attempts" in str(caught.value)


def test_4xx_is_not_retried_and_shows_the_server_message() -> None:
    with (
        stub_server([(400, {"error": '"instances": pixel values must be finite'})]) as stub,
        pytest.raises(ServerRefusedError, match="pixel values must be finite") as caught,
    ):
        post_images(stub.url, IMAGES, retries=3, backoff_s=0.01, token_env=None)
    assert caught.value.status == 400
    assert len(stub.requests) == 1


def test_databricks_style_error_message_is_shown() -> None:
    body = {"error_code": "PERMISSION_DENIED", "message": "Invalid access token."}
    with (
        stub_server([(403, body)]) as stub,
        pytest.raises(ServerRefusedError, match="403 Forbidden: Invalid access token"),
    ):
        post_images(stub.url, IMAGES, token_env=None)


def test_a_server_that_is_down_is_reported_unreachable() -> None:
    url = f"http://127.0.0.1:{_free_port()}/invocations"
    with pytest.raises(ServerUnavailableError, match="Connection refused") as caught:
        post_images(url, IMAGES, retries=1, backoff_s=0.01, token_env=None)
    assert url in str(caught.value)


def test_a_slow_server_times_out_and_is_retried() -> None:
    with (
        stub_server([(200, "predict")], delay_s=1.0) as stub,
        pytest.raises(ServerUnavailableError, match=r"no answer within 0\.2 s"),
    ):
        post_images(stub.url, IMAGES, timeout_s=0.2, retries=1, backoff_s=0.01, token_env=None)
    assert len(stub.requests) == 2


def test_an_answer_without_predictions_is_an_error() -> None:
    with (
        stub_server([(200, {"outputs": []})]) as stub,
        pytest.raises(ClientError, match=r'without \{"predictions"'),
    ):
        post_images(stub.url, IMAGES, token_env=None)
    with (
        stub_server([(200, {"predictions": [[0.5, 0.5]]})]) as stub,
        pytest.raises(ClientError, match=r"shape \(1, 2\); expected \(2, 10\)"),
    ):
        post_images(stub.url, IMAGES, token_env=None)


def test_token_is_never_sent_in_clear_to_another_host(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MY_DATABRICKS_TOKEN", "dapi-test-token")
    with pytest.raises(ClientError, match=r"refusing to send the bearer token .* to 10\.1\.2\.3"):
        post_images("http://10.1.2.3:8080/invocations", IMAGES, token_env="MY_DATABRICKS_TOKEN")


@pytest.mark.parametrize(
    "host", ["127.evil.example", "127.0.0.1.nip.io", "localhost.example", "10.0.0.1"]
)
def test_only_loopback_literals_and_localhost_may_get_a_token_over_http(
    monkeypatch: pytest.MonkeyPatch, host: str
) -> None:
    monkeypatch.setenv("MY_TOKEN", "secret-token")
    with pytest.raises(ClientError, match=f"refusing to send the bearer token .* to {host}"):
        post_images(f"http://{host}:8080/invocations", IMAGES, token_env="MY_TOKEN", retries=0)


@pytest.mark.parametrize(
    ("host", "local"),
    [
        ("localhost", True),
        ("LOCALHOST", True),
        ("127.0.0.1", True),
        ("127.45.6.7", True),
        ("::1", True),
        ("127.evil.example", False),
        ("localhost.example", False),
        ("128.0.0.1", False),
        ("0.0.0.0", False),
    ],
)
def test_what_counts_as_loopback(host: str, local: bool) -> None:
    assert is_loopback_host(host) is local


def test_a_token_over_plain_http_never_goes_through_an_environment_proxy(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("MY_TOKEN", "secret-token")
    for name in ("NO_PROXY", "no_proxy", "ALL_PROXY", "all_proxy"):
        monkeypatch.delenv(name, raising=False)
    with stub_server([(200, "predict")]) as proxy, stub_server([(200, "predict")]) as server:
        monkeypatch.setenv("HTTP_PROXY", proxy.url)
        monkeypatch.setenv("http_proxy", proxy.url)
        post_images(f"{server.url}/invocations", IMAGES, token_env="MY_TOKEN")
        post_images(f"{server.url}/invocations", IMAGES, token_env="MY_TOKEN", session=Session())
    assert proxy.requests == []  # the proxy saw neither the request nor the token
    assert [r.headers["Authorization"] for r in server.requests] == ["Bearer secret-token"] * 2
