"""A model server started by a process that is killed must not outlive it (issue: orphaned servers).

A parent process starts the real server (``ServerProcess``, own session, as the deploy
pipeline does), reports it, and is SIGKILLed with its whole process group: the server
must stop and remove its temporary folder by itself. The same server checks the token
wiring end to end (``$MNIST_SERVER_TOKEN`` in the child).
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import requests

from tests.serving.registered_model import RegisteredModel

pytestmark = [pytest.mark.integration, pytest.mark.slow]  # starts a real server (TensorFlow)

PARENT = """
import json, sys
from mnist_pipeline.serving.server import ServerProcess, ServerSettings
server = ServerProcess(sys.argv[1], sys.argv[2], ServerSettings(port=0), token=sys.argv[3])
server.start()
report = {"pid": server.process.pid, "workdir": str(server.workdir), "url": server.url,
          "predict_url": server.predict_url}
print(json.dumps(report), flush=True)
sys.stdin.read()  # until killed
"""


def _running(pid: int) -> bool:
    """Whether ``pid`` is a live process (a zombie waiting for its reaper is not)."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (FileNotFoundError, ProcessLookupError):
        return False
    return state != "Z"


def _wait_until(condition, timeout_s: float) -> bool:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.1)  # polling process state, bounded
    return condition()


def test_killing_the_parent_stops_the_server_and_removes_its_folder(
    registered: RegisteredModel,
) -> None:
    parent = subprocess.Popen(
        [sys.executable, "-c", PARENT, registered.model_uri, registered.registry_uri, "tk-123"],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,  # a group of its own, killed as a whole like a run
    )
    server_pid = None
    try:
        line = parent.stdout.readline()  # the handshake: the server is up and answering
        assert line, f"the parent died before its server was ready: {parent.stderr.read()[-3000:]}"
        server = json.loads(line)
        server_pid, workdir = server["pid"], Path(server["workdir"])
        assert _running(server_pid) and workdir.is_dir()

        # The token reaches the child: 401 without it, 200 with it; no path in the status.
        body = {"instances": registered.test_images[:2].tolist()}
        assert requests.post(server["predict_url"], json=body, timeout=30).status_code == 401
        auth = {"Authorization": "Bearer tk-123"}
        answer = requests.post(server["predict_url"], json=body, headers=auth, timeout=30)
        assert answer.status_code == 200
        assert np.asarray(answer.json()["predictions"]).shape == (2, 10)
        status = requests.get(f"{server['url']}/v1/models/mnist_cnn", headers=auth, timeout=30)
        assert status.json()["model"]["version"] == registered.version
        assert str(registered.root) not in status.text and "sqlite" not in status.text

        os.killpg(parent.pid, signal.SIGKILL)
        parent.wait(timeout=30)
        assert _wait_until(lambda: not _running(server_pid), timeout_s=60), "server outlived it"
        assert not workdir.exists()
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(parent.pid, signal.SIGKILL)
        if server_pid is not None and _running(server_pid):
            os.killpg(server_pid, signal.SIGKILL)  # don't leak it when the test fails
        parent.wait(timeout=30)
