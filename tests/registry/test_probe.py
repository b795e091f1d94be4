"""A slow or unreachable registry: bounded attempts, a message naming the (redacted) URI.

Two kinds of dead registry: a closed port (refused at once) and a listener that accepts
connections and never answers (the case that used to take 255 s). The probe's timeout is
lowered to 1 s here through its own variable; the attempts are counted by the listener.
"""

from __future__ import annotations

import re
import socket
import threading
import time
from collections.abc import Iterator

import pytest

from mnist_pipeline.registry import RegistryUnreachableError, probe, store
from mnist_pipeline.registry.config import Workspace
from mnist_pipeline.serving.validation import validate_in_server
from tests.integration.mlflow_servers import free_port

SECRET = "pr0be-s3cret"


class SilentListener:
    """Accepts TCP connections on 127.0.0.1, reads nothing, answers nothing; counts them."""

    def __init__(self) -> None:
        self.sock = socket.create_server(("127.0.0.1", 0))
        self.sock.settimeout(0.2)
        self.port = self.sock.getsockname()[1]
        self.accepted: list[socket.socket] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()

    def _serve(self) -> None:
        while not self._stop.is_set():
            try:
                connection, _ = self.sock.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            self.accepted.append(connection)

    def close(self) -> None:
        self._stop.set()
        self._thread.join()
        for connection in self.accepted:
            connection.close()
        self.sock.close()


@pytest.fixture
def silent() -> Iterator[SilentListener]:
    listener = SilentListener()
    try:
        yield listener
    finally:
        listener.close()


@pytest.fixture(autouse=True)
def _short_probe(monkeypatch):
    for name in ("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "MLFLOW_HTTP_REQUEST_TIMEOUT"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv(probe.TIMEOUT_VARIABLE, "1")
    monkeypatch.setenv(probe.RETRIES_VARIABLE, "1")


def _uri(port: int) -> str:
    return f"http://bot:{SECRET}@127.0.0.1:{port}"


def _shown(port: int) -> str:
    return f"http://bot:***@127.0.0.1:{port}"


def test_the_probe_settings_come_from_the_environment_and_are_checked(monkeypatch):
    assert probe.settings() == (1, 1)
    monkeypatch.delenv(probe.TIMEOUT_VARIABLE)
    monkeypatch.delenv(probe.RETRIES_VARIABLE)
    assert probe.settings() == (probe.PROBE_TIMEOUT_S, probe.PROBE_RETRIES)
    # At most (retries + 1) × timeout for a registry that never answers: the goal is ~20 s.
    assert (probe.PROBE_RETRIES + 1) * probe.PROBE_TIMEOUT_S <= 20
    monkeypatch.setenv(probe.RETRIES_VARIABLE, "-1")
    with pytest.raises(ValueError, match=r"MNIST_REGISTRY_PROBE_RETRIES='-1': .* ≥ 0"):
        probe.settings()


def test_bounded_restores_mlflows_own_settings(monkeypatch):
    import os

    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_TIMEOUT", "120")
    with probe.bounded():
        assert os.environ["MLFLOW_HTTP_REQUEST_TIMEOUT"] == "1"
        assert os.environ["MLFLOW_HTTP_REQUEST_MAX_RETRIES"] == "1"
    assert os.environ["MLFLOW_HTTP_REQUEST_TIMEOUT"] == "120"
    assert "MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR" not in os.environ


def test_a_silent_registry_is_asked_twice_then_named_redacted(silent):
    workspace = Workspace("production", _uri(silent.port), _uri(silent.port), "m", "production")
    started = time.monotonic()
    with pytest.raises(RegistryUnreachableError) as error:
        store.check_reachable(workspace)
    elapsed = time.monotonic() - started
    message = str(error.value)
    assert message.startswith(f"production tracking store {_shown(silent.port)} is unreachable")
    assert SECRET not in message and "nothing was changed" in message
    assert len(silent.accepted) == 2  # one attempt + one retry, then it gives up
    print(f"silent registry: {elapsed:.1f} s with a 1 s timeout")  # reported, not asserted


def test_serving_resolution_of_a_silent_registry_says_unreachable_not_unpromoted(silent):
    with pytest.raises(store.ModelResolutionError) as error:
        store.resolve_alias("mnist_cnn", "production", _uri(silent.port))
    message = str(error.value)
    assert message.startswith(f"the registry {_shown(silent.port)} is unreachable (2 attempts")
    assert "promoted" not in message and SECRET not in message
    assert len(silent.accepted) == 2


def test_a_closed_port_fails_at_once_with_the_redacted_uri():
    port = free_port()  # nothing listens there
    with pytest.raises(store.ModelResolutionError) as error:
        store.resolve_alias("mnist_cnn", "production", _uri(port))
    assert str(error.value).startswith(f"the registry {_shown(port)} is unreachable (2 attempts")
    assert SECRET not in str(error.value)
    workspace = Workspace("sandbox", _uri(port), _uri(port), "m", "champion")
    with pytest.raises(RegistryUnreachableError, match=re.escape(f"tracking store {_shown(port)}")):
        store.check_reachable(workspace)


def test_the_probe_retries_at_once_never_pausing_between_attempts(monkeypatch):
    """Its bound is (retries + 1) × timeout: with 3 retries, 3 retries and no pause (MLflow's
    default backoff would sleep seconds between them)."""
    from urllib3.util.retry import Retry

    pauses = []  # what urllib3 would sleep before each retry of MLflow's requests
    monkeypatch.setattr(Retry, "_sleep_backoff", lambda r: pauses.append(r.get_backoff_time()))
    monkeypatch.setenv(probe.RETRIES_VARIABLE, "3")
    port = free_port()  # nothing listens there
    with pytest.raises(store.ModelResolutionError, match=r"unreachable \(4 attempts"):
        store.resolve_alias("mnist_cnn", "production", _uri(port))
    assert pauses == [0.0, 0.0, 0.0]


def test_a_garbage_registry_uri_is_a_clear_error_not_a_traceback():
    with pytest.raises(
        store.ModelResolutionError, match=r"the registry nonsense://x is unreachable"
    ):
        store.resolve_alias("mnist_cnn", "production", "nonsense://x")


def test_deploy_against_a_silent_registry_reports_why(silent):
    import numpy as np

    report = validate_in_server(
        {"name": "mnist_cnn", "alias": "production", "registry_uri": _uri(silent.port)},
        np.zeros((2, 28, 28), np.uint8),
        np.zeros(2, np.uint8),
        {"min_accuracy": 0.9, "latency_requests": 1},
    )
    assert not report["deployable"]
    assert report["model"]["registry_uri"] == _shown(silent.port)
    [failure] = report["failures"]
    assert failure.startswith("resolving the model failed: ModelResolutionError: the registry ")
    assert "unreachable (2 attempts" in failure and SECRET not in str(report)
    assert len(silent.accepted) == 2
