"""Session fixtures for the real registered model and the real model server.

Import them into a conftest or a test module (``from tests.serving.fixtures import
registered, model_server``); the model and the server are built once per session
whichever folder asks first.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.serving.registered_model import (
    RegisteredModel,
    registered_model,
    shared_server,
    stop_shared_server,
)


@pytest.fixture(scope="session")
def registered(tmp_path_factory: pytest.TempPathFactory, real_mnist_dir: Path) -> RegisteredModel:
    """A small CNN trained 1 epoch on real MNIST, registered as ``mnist_cnn@production``."""
    return registered_model(tmp_path_factory, real_mnist_dir)


@pytest.fixture(scope="session")
def model_server(registered: RegisteredModel) -> Iterator:
    """The real server (child process on 127.0.0.1) serving ``registered``.

    Started with ``max_request_bytes=1,000,000`` and ``max_batch_size=64`` so the
    limits are cheap to test.
    """
    yield shared_server(registered)
    stop_shared_server()
