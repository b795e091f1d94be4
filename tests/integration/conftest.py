"""Fixtures for the real-thing tests: real ``mlflow server`` processes on 127.0.0.1.

See :mod:`tests.integration.mlflow_servers` for the server helper itself.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.integration.mlflow_servers import MlflowServerFactory, MlflowServerPair


@pytest.fixture
def mlflow_server_factory(tmp_path: Path) -> Iterator[MlflowServerFactory]:
    """``factory(name)`` starts a real server (own SQLite store + artifacts); all stop after."""
    factory = MlflowServerFactory(tmp_path / "mlflow-servers")
    try:
        yield factory
    finally:
        factory.close()


@pytest.fixture
def mlflow_servers(mlflow_server_factory: MlflowServerFactory) -> MlflowServerPair:
    """Two real servers, ``.sandbox`` and ``.production``, with no shared storage."""
    return mlflow_server_factory.pair()
