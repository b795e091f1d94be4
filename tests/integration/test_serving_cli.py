"""``kedro serve --env gcp``: the users' command, as a real process, stopped with Ctrl-C."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import requests

pytestmark = [pytest.mark.integration, pytest.mark.slow]

KEDRO = str(Path(sys.executable).parent / "kedro")


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _environment(registry_uri: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("MLFLOW_")}
    env.update(
        KEDRO_DISABLE_TELEMETRY="1",
        MLFLOW_PRODUCTION_REGISTRY_URI=registry_uri,
        PATH=f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}",
    )
    return env


def test_kedro_serve_serves_the_production_model_until_ctrl_c(
    registered,
    project_root: Path,
    tmp_path: Path,
) -> None:
    port = _free_port()
    log = tmp_path / "serve.log"
    with log.open("wb") as output:
        process = subprocess.Popen(
            [KEDRO, "serve", "--env", "gcp", "--port", str(port)],
            cwd=project_root,
            env=_environment(registered.registry_uri),
            stdout=output,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # its own process group, like a terminal's foreground job
        )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 240
        while time.monotonic() < deadline:
            assert process.poll() is None, log.read_text()[-3000:]
            with contextlib.suppress(requests.ConnectionError):
                if requests.get(f"{url}/health", timeout=2).status_code == 200:
                    break
            time.sleep(0.5)
        else:
            pytest.fail(f"kedro serve did not answer on {url}: {log.read_text()[-3000:]}")
        status = requests.get(f"{url}/v1/models/mnist_cnn", timeout=10).json()
        assert status["model"]["version"] == registered.version
        assert status["model"]["alias"] == "production"
        body = {"instances": registered.test_images[:8].tolist()}
        answer = requests.post(f"{url}/v1/models/mnist_cnn:predict", json=body, timeout=30)
        predictions = np.asarray(answer.json()["predictions"])
        assert predictions.shape == (8, 10)
        assert (predictions.argmax(1) == registered.test_labels[:8]).mean() >= 0.75

        os.killpg(process.pid, signal.SIGINT)  # what Ctrl-C in a terminal sends
        assert process.wait(timeout=60) == 0, log.read_text()[-3000:]
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)
    text = log.read_text()
    assert f"Serving models:/mnist_cnn/{registered.version}" in text
    assert "stopped" in text
    with pytest.raises(requests.ConnectionError):
        requests.get(f"{url}/health", timeout=5)


def test_kedro_serve_explains_a_missing_model(registered, project_root: Path) -> None:
    env = _environment(registered.registry_uri)
    env["MLFLOW_PRODUCTION_ALIAS"] = "nobody"
    result = subprocess.run(
        [KEDRO, "serve", "--env", "gcp", "--port", str(_free_port())],
        cwd=project_root,
        env=env,
        capture_output=True,
        text=True,
        timeout=240,
        check=False,
    )
    assert result.returncode != 0
    assert "models:/mnist_cnn@nobody" in result.stderr + result.stdout
