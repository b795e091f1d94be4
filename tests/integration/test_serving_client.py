"""The client, end to end: real MNIST digits drawn into photos → real server → the digit."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from mnist_pipeline.client import ServerRefusedError, post_images, predict_digits
from mnist_pipeline.serving.model import load_keras_model
from tests.client.render import render, save

pytestmark = pytest.mark.integration

STYLES = [
    ({}, "png", {}),
    ({"paper": (255, 255, 255), "ink": (0, 0, 0), "scale": 8, "canvas": (400, 300)}, "jpg", {}),
    ({"paper": (200, 220, 255), "ink": (120, 10, 10), "scale": 3, "canvas": (120, 100)}, "png", {}),
    ({"paper": (25, 25, 25), "ink": (240, 240, 240), "offset": (150, 100)}, "jpg", {"quality": 80}),
]


@pytest.fixture(scope="module")
def photos(registered, tmp_path_factory) -> tuple[list[Path], np.ndarray]:
    """40 real test digits the model reads confidently, drawn as PNG/JPEG photos of any style."""
    model = load_keras_model(registered.model_uri, registered.registry_uri)
    images, labels = registered.test_images[:400], registered.test_labels[:400]
    probabilities = model.predict(images[..., None].astype(np.float32), verbose=0)
    confident = np.flatnonzero((probabilities.argmax(1) == labels) & (probabilities.max(1) > 0.95))[
        :40
    ]
    folder = tmp_path_factory.mktemp("photos")
    paths = []
    for number, index in enumerate(confident):
        style, suffix, save_args = STYLES[number % len(STYLES)]
        paths.append(
            save(render(images[index], **style), folder / f"{number}.{suffix}", **save_args)
        )
    return paths, labels[confident]


def test_client_recovers_the_digits_from_photos(model_server, photos) -> None:
    paths, labels = photos
    results = predict_digits(paths, model_server.predict_url, token_env=None)
    digits = np.asarray([result.digit for result in results])
    assert [result.source for result in results] == [str(path) for path in paths]
    accuracy = float((digits == labels).mean())
    assert accuracy >= 0.9, f"recovered {accuracy:.2f}; wrong: {np.flatnonzero(digits != labels)}"
    assert all(0 <= r.probability <= 1 and len(r.probabilities) == 10 for r in results)


def _client(*args: str) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k != "MNIST_SERVING_TOKEN"}
    return subprocess.run(
        [sys.executable, "-m", "mnist_pipeline.client", *args],
        capture_output=True,
        check=False,
        text=True,
        timeout=120,
        env=env,
    )


def test_command_line_prints_digits_and_json(model_server, photos) -> None:
    paths, _ = photos
    chosen = [str(paths[0]), str(paths[1])]
    plain = _client(*chosen, "--url", model_server.predict_url)
    assert plain.returncode == 0, plain.stderr
    lines = plain.stdout.strip().splitlines()
    assert len(lines) == 2
    assert lines[0].startswith(f"{chosen[0]}: ") and "probability" in lines[0]
    as_json = _client(*chosen, "--url", model_server.url, "--json")  # bare host: /invocations
    assert as_json.returncode == 0, as_json.stderr
    answers = json.loads(as_json.stdout)
    assert [a["image"] for a in answers] == chosen
    assert all(len(a["probabilities"]) == 10 for a in answers)
    assert lines[0].split(": ")[1].startswith(str(answers[0]["digit"]))


def test_command_line_errors_are_clear(model_server, photos, tmp_path: Path) -> None:
    broken = tmp_path / "broken.jpg"
    broken.write_text("not an image")
    unreadable = _client(str(broken), "--url", model_server.predict_url)
    assert unreadable.returncode == 2
    assert "cannot read" in unreadable.stderr and "broken.jpg" in unreadable.stderr
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    down = _client(str(photos[0][0]), "--url", f"http://127.0.0.1:{port}", "--retries", "1")
    assert down.returncode == 1
    assert "unreachable" in down.stderr and str(port) in down.stderr
    wrong_model = _client(str(photos[0][0]), "--url", f"{model_server.url}/v1/models/other:predict")
    assert wrong_model.returncode == 1
    assert "404" in wrong_model.stderr and "serves 'mnist_cnn'" in wrong_model.stderr


def test_server_message_reaches_the_caller(model_server) -> None:
    too_many = np.zeros((65, 28, 28), np.uint8)  # the test server takes at most 64 per request
    with pytest.raises(ServerRefusedError, match=r"413.*exceeds the limit of 64") as caught:
        post_images(model_server.predict_url, too_many, token_env=None)
    assert caught.value.status == 413


def test_failover_from_a_stopped_server_to_the_real_one(model_server, photos) -> None:
    """Two real servers on 127.0.0.1: a stand-in primary that stops mid-test, the model server."""
    from tests.client.stub_server import stub_server

    paths, labels = photos
    with stub_server([(200, "predict")], digit=0) as primary:
        urls = [f"{primary.url}/v1/models/mnist_cnn:predict", model_server.predict_url]
        before = predict_digits(paths[:4], urls, token_env=None)
        assert {r.endpoint for r in before} == {urls[0]}
        primary.stop()
        failures: list[str] = []
        after = predict_digits(paths, urls, token_env=None, backoff_s=0.01, failures=failures)
    assert {r.endpoint for r in after} == {model_server.predict_url}
    assert failures == [f"{urls[0]}: cannot connect (Connection refused)"]
    digits = np.asarray([r.digit for r in after])
    assert (digits == labels).mean() >= 0.9
