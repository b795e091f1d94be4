"""Failover between endpoints, against two real HTTP servers on 127.0.0.1 (one stopped mid-test)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from mnist_pipeline.client import (
    Endpoint,
    ServerRefusedError,
    ServerUnavailableError,
    predict_digits,
    request_predictions,
)
from mnist_pipeline.client.__main__ import main
from tests.client.stub_server import stub_server

IMAGES = np.zeros((2, 28, 28), dtype=np.uint8)


@pytest.fixture
def tokens(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AZURE_TOKEN", "azure-secret")
    monkeypatch.setenv("GCP_TOKEN", "gcp-secret")


@pytest.fixture
def digit_image(tmp_path: Path) -> Path:
    pixels = np.full((120, 90), 250, np.uint8)
    pixels[20:100, 40:50] = 10  # a dark "1" on white paper
    path = tmp_path / "one.png"
    Image.fromarray(pixels).save(path)
    return path


def test_the_second_endpoint_answers_once_the_first_is_stopped(tokens) -> None:
    with (
        stub_server([(200, "predict")], digit=3) as first,
        stub_server([(200, "predict")], digit=5) as second,
    ):
        endpoints = [Endpoint(first.url, "AZURE_TOKEN"), Endpoint(second.url, "GCP_TOKEN")]
        answer = request_predictions(endpoints, IMAGES)
        assert answer.endpoint == f"{first.url}/invocations"
        assert answer.probabilities.argmax(axis=1).tolist() == [3, 3]
        assert answer.failures == []
        assert second.requests == []

        first.stop()  # the primary goes down mid-test
        answer = request_predictions(endpoints, IMAGES, backoff_s=0.01)
        assert answer.endpoint == f"{second.url}/invocations"
        assert answer.probabilities.argmax(axis=1).tolist() == [5, 5]
        (failure,) = answer.failures
        assert first.url in failure and "Connection refused" in failure
    # each endpoint got its own token, and only its own
    assert [r.headers["Authorization"] for r in first.requests] == ["Bearer azure-secret"]
    assert [r.headers["Authorization"] for r in second.requests] == ["Bearer gcp-secret"]


def test_a_5xx_fails_over_and_is_reported() -> None:
    with (
        stub_server([(503, {"error": "model is loading"})]) as first,
        stub_server([(200, "predict")], digit=7) as second,
    ):
        answer = request_predictions([first.url, second.url], IMAGES, token_env=None)
    assert answer.endpoint.startswith(second.url)
    assert answer.probabilities.argmax(axis=1).tolist() == [7, 7]
    assert answer.failures == [f"{first.url}/invocations: server error 503: model is loading"]


def test_a_4xx_never_fails_over() -> None:
    with (
        stub_server([(400, {"error": "pixel values must be finite"})]) as first,
        stub_server([(200, "predict")]) as second,
    ):
        with pytest.raises(ServerRefusedError, match="pixel values must be finite") as caught:
            request_predictions([first.url, second.url], IMAGES, token_env=None)
        assert caught.value.status == 400
    assert len(first.requests) == 1
    assert second.requests == []


def test_one_attempt_per_endpoint_per_round_within_the_deadline() -> None:
    # A silent first endpoint and a failing second one: rounds alternate first, second, ...
    # and stop at the deadline, not after retries × timeout (here 20 × 1 s).
    with (
        stub_server([(200, "predict")], delay_s=30) as silent,
        stub_server([(502, {"error": "bad gateway"})]) as failing,
    ):
        with pytest.raises(ServerUnavailableError) as caught:
            request_predictions(
                [silent.url, failing.url],
                IMAGES,
                token_env=None,
                timeout_s=1.0,
                retries=20,
                backoff_s=0.01,
                deadline_s=2.5,
            )
        order = [
            name
            for _, name in sorted(
                [(r.at, "silent") for r in silent.requests]
                + [(r.at, "failing") for r in failing.requests]
            )
        ]
    message = str(caught.value)
    assert "deadline of 2.5 s reached" in message
    assert f"{silent.url}/invocations: no answer within" in message
    assert f"{failing.url}/invocations: server error 502: bad gateway" in message
    assert 2 <= len(order) < 2 * 21
    assert order == ["silent", "failing"] * (len(order) // 2) + ["silent"] * (len(order) % 2)


def test_later_requests_start_with_the_endpoint_that_answered(digit_image: Path) -> None:
    with (
        stub_server([(503, {"error": "down"})]) as first,
        stub_server([(200, "predict")], digit=1) as second,
    ):
        failures: list[str] = []
        results = predict_digits(
            [digit_image] * 70,  # two requests of at most 64 images
            [first.url, second.url],
            token_env=None,
            backoff_s=0.01,
            failures=failures,
        )
    assert [r.digit for r in results] == [1] * 70
    assert {r.endpoint for r in results} == {f"{second.url}/invocations"}
    assert len(first.requests) == 1 and len(second.requests) == 2
    assert len(failures) == 1


def test_command_line_names_the_endpoint_that_answered(
    tokens, digit_image: Path, capsys: pytest.CaptureFixture
) -> None:
    with (
        stub_server([(200, "predict")]) as first,
        stub_server([(200, "predict")], digit=1) as second,
    ):
        first.stop()
        args = [str(digit_image), "--url", first.url, "--url", second.url]
        code = main([*args, "--token-env", "AZURE_TOKEN", "--token-env", "GCP_TOKEN"])
    out, err = capsys.readouterr()
    assert code == 0, err
    assert out.strip() == f"{digit_image}: 1 (probability 1.000)"
    assert f"failed over: {first.url}/invocations: cannot connect (Connection refused)" in err
    assert f"answered by {second.url}/invocations" in err
    assert second.requests[0].headers["Authorization"] == "Bearer gcp-secret"
    assert "secret" not in out + err


def test_urls_from_the_environment(
    monkeypatch: pytest.MonkeyPatch, digit_image: Path, capsys: pytest.CaptureFixture
) -> None:
    monkeypatch.delenv("MNIST_SERVING_TOKEN", raising=False)
    with (
        stub_server([(500, {"error": "boom"})]) as first,
        stub_server([(200, "predict")], digit=1) as second,
    ):
        monkeypatch.setenv("MNIST_SERVING_URLS", f"{first.url}, {second.url}")
        code = main([str(digit_image), "--json", "--retries", "0"])
    out, err = capsys.readouterr()
    assert code == 0, err
    assert [a["endpoint"] for a in json.loads(out)] == [f"{second.url}/invocations"]


def test_token_variables_must_match_the_urls(digit_image: Path, capsys) -> None:
    args = [str(digit_image), "--url", "http://127.0.0.1:1", "--url", "http://127.0.0.1:2"]
    code = main([*args, "--token-env", "A", "--token-env", "B", "--token-env", "C"])
    assert code == 2
    assert "3 token variables for 2 URLs" in capsys.readouterr().err
