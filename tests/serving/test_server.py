"""Server settings and start-up failures (the happy path runs in tests/integration)."""

from __future__ import annotations

import socket
from pathlib import Path

import pytest

from mnist_pipeline.parameters import ParametersError, check
from mnist_pipeline.serving.server import (
    ServerProcess,
    ServerSettings,
    ServerStartError,
    bind_socket,
)


def test_settings_from_configuration_take_text_numbers_and_refuse_unknown_keys() -> None:
    """The ``serving`` schema is the settings' one path: text numbers from ``${env:...}`` are
    taken, a misspelt key is refused by name (it used to be ignored)."""
    settings = ServerSettings.model_validate(
        {"host": "127.0.0.1", "port": "9000", "max_batch_size": 8}
    )
    assert settings.port == 9000
    assert settings.max_batch_size == 8
    assert "--max-batch-size=8" in settings.cli_args()
    with pytest.raises(ParametersError, match=r"serving\.colour = 'blue': unknown key; allowed"):
        check(ServerSettings, {"port": 9000, "colour": "blue"}, "serving")


def test_a_port_in_use_is_refused_by_name() -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        with pytest.raises(ServerStartError, match=f"cannot bind 127.0.0.1:{port}"):
            bind_socket("127.0.0.1", port)


def test_port_zero_picks_a_free_port() -> None:
    sock = bind_socket("127.0.0.1", 0)
    try:
        assert sock.getsockname()[1] > 0
    finally:
        sock.close()


def test_a_server_that_cannot_start_says_why(registered, tmp_path: Path) -> None:
    uri = "models:/mnist_cnn@nobody"
    process = ServerProcess(uri, registered.registry_uri, ServerSettings(port=0), workdir=tmp_path)
    with pytest.raises(ServerStartError, match="exited with code 1") as caught:
        process.start()
    assert "cannot resolve models:/mnist_cnn@nobody" in str(caught.value)
    assert process.process is None
