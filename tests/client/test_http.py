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


class FakeClock:
    """The client's clock: ``sleep`` moves it on, nothing else does (attempts take no time)."""

    def __init__(self) -> None:
        self.now = 1000.0
        self.sleeps: list[float] = []

    def monotonic(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        assert seconds >= 0
        self.sleeps.append(seconds)
        self.now += seconds


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> FakeClock:
    from mnist_pipeline.client import http

    fake = FakeClock()
    monkeypatch.setattr(http, "time", fake)
    return fake


def test_the_backoff_starts_at_backoff_s_and_doubles(clock: FakeClock) -> None:
    with stub_server([(503, {"error": "warming up"})] * 3 + [(200, "predict")]) as stub:
        post_images(stub.url, IMAGES, retries=5, backoff_s=0.1, deadline_s=None, token_env=None)
    assert clock.sleeps == pytest.approx([0.1, 0.2, 0.4])
    assert len(stub.requests) == 4


@pytest.mark.parametrize("backoff_s", [0.4, 30.0])
def test_no_pause_runs_past_the_deadline(clock: FakeClock, backoff_s: float) -> None:
    """A server that keeps failing, a deadline of 1 s: the pauses end at the deadline (the
    last one is cut short), no attempt starts after it, and the error says so."""
    started = clock.now
    with (
        stub_server([(503, {"error": "model is loading"})]) as stub,
        pytest.raises(ServerUnavailableError, match="deadline of 1 s reached") as caught,
    ):
        post_images(stub.url, IMAGES, retries=10, backoff_s=backoff_s, deadline_s=1.0,
                    token_env=None)  # fmt: skip
    assert clock.now - started == pytest.approx(1.0)  # every pause within the deadline
    assert clock.sleeps[0] == pytest.approx(min(backoff_s, 1.0))
    assert len(stub.requests) == len(clock.sleeps)  # the attempt after the last pause: none
    assert f"after {len(stub.requests)} attempt" in str(caught.value)


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
        ("::", False),
        ("10.1.2.3", False),
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


class TricklingServer:
    """Reads a request, then answers one byte every 0.1 s (for at most 20 s, then closes).

    ``phase`` ``"body"``: the headers come at once, the body trickles; ``"headers"``: the
    status line itself trickles. ``client_left`` is set when the client cut the connection
    while the answer was still trickling.
    """

    def __init__(self, phase: str) -> None:
        import threading

        self.phase = phase
        self.client_left = threading.Event()
        self.sock = socket.create_server(("127.0.0.1", 0))
        self.url = f"http://127.0.0.1:{self.sock.getsockname()[1]}/invocations"
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self) -> None:
        import threading

        with self.sock:
            connection, _ = self.sock.accept()
        with connection:
            received = b""
            while b"\r\n\r\n" not in received:
                received += connection.recv(65536)
            head, _, body = received.partition(b"\r\n\r\n")
            length = int(next(line.split(b":")[1] for line in head.split(b"\r\n")
                              if line.lower().startswith(b"content-length")))  # fmt: skip
            while len(body) < length:
                body += connection.recv(65536)
            payload = b'{"predictions": []}' + b" " * 10_000
            head = f"HTTP/1.1 200 OK\r\nContent-Length: {len(payload)}\r\n\r\n".encode()
            if self.phase == "body":
                connection.sendall(head)
                answer = payload
            else:
                answer = head + payload
            pause = threading.Event()
            for index in range(200):  # 20 s at most
                try:
                    connection.sendall(answer[index : index + 1])
                except OSError:
                    self.client_left.set()
                    return
                pause.wait(0.1)


@pytest.mark.parametrize("phase", ["body", "headers"])
def test_the_deadline_bounds_a_server_that_trickles_its_answer(phase: str) -> None:
    """requests' timeout bounds each read; a byte every 0.1 s never trips it. The deadline
    (and each attempt's timeout) bound the whole answer."""
    server = TricklingServer(phase)
    with pytest.raises(ServerUnavailableError) as caught:
        post_images(server.url, IMAGES, timeout_s=1.0, retries=0, deadline_s=1.5, token_env=None)
    assert "no complete answer within 1 s" in str(caught.value)
    assert server.client_left.wait(10)  # cut by the client while the answer still trickled
    server.thread.join(30)


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        ({"timeout_s": 0}, "the timeout must be a positive number of seconds, found 0"),
        ({"deadline_s": -1}, "the deadline must be a positive number of seconds, found -1"),
        ({"retries": -2}, "retries must be 0 or more, found -2"),
    ],
)
def test_limits_that_cannot_work_are_refused_before_any_request(arguments, message) -> None:
    with stub_server([(200, "predict")]) as stub, pytest.raises(ClientError, match=message):
        post_images(stub.url, IMAGES, token_env=None, **arguments)
    assert not stub.requests


@pytest.mark.parametrize(
    ("option", "value"), [("--timeout", "0"), ("--deadline", "-1"), ("--retries", "-1")]
)
def test_the_command_line_refuses_them_in_one_line(option, value, capsys, tmp_path) -> None:
    from mnist_pipeline.client.__main__ import main

    code = main([str(tmp_path / "any.png"), "--url", "http://127.0.0.1:9/", option, value])
    error = capsys.readouterr().err
    assert code == 2
    assert error.startswith(f"error: {option}: ") and error.count("\n") == 1
