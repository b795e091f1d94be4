"""Fixtures for the real-thing tests: real ``mlflow server`` processes on 127.0.0.1.

See :mod:`tests.integration.mlflow_servers` for the server helper itself.

Starting a pair of servers costs some 15 s of CPU on two cores, so a test module's tests
share one pair (``mlflow_servers``) and keep apart by name (``mlflow_names``: a registered
model, experiments and an artifact folder of their own). A test that needs servers nobody
else has touched asks ``mlflow_server_factory`` for its own and says why.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
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


@pytest.fixture(scope="module")
def module_mlflow_servers(tmp_path_factory) -> Iterator[MlflowServerPair]:
    """One sandbox and one production server for the whole module, stopped after it."""
    factory = MlflowServerFactory(tmp_path_factory.mktemp("mlflow-servers"))
    try:
        yield factory.pair()
    finally:
        factory.close()


@pytest.fixture
def mlflow_servers(module_mlflow_servers: MlflowServerPair) -> MlflowServerPair:
    """Two real servers, ``.sandbox`` and ``.production``, with no shared storage.

    The module's pair, both running: a server an earlier test stopped (to prove something
    works without it) is started again, on a new port, with its store. Its stores hold the
    module's other tests' models and runs too: use ``mlflow_names``.
    """
    stopped = [
        server
        for server in (module_mlflow_servers.sandbox, module_mlflow_servers.production)
        if not server.is_running()
    ]
    for server in stopped:
        server.port = None  # a free port now: the old one may have been taken meanwhile
        server.launch()
    for server in stopped:
        server.wait_healthy()
    return module_mlflow_servers


@dataclass(frozen=True)
class MlflowNames:
    """Names no other test uses: what a test writes into shared servers goes under them."""

    model: str  # the registered model, in the sandbox and in production
    experiment: str  # the sandbox runs' experiment
    production_experiment: str  # the experiment of production's copies
    artifacts: str  # a folder under each server's artifact root (``mlflow-artifacts:/<it>``)


@pytest.fixture
def mlflow_names(request: pytest.FixtureRequest) -> MlflowNames:
    test = re.sub(r"[^A-Za-z0-9]+", "_", request.node.name)[:40].strip("_")
    unique = f"{test}_{uuid.uuid4().hex[:8]}"
    return MlflowNames(
        model=f"mnist_cnn_{unique}",
        experiment=f"sandbox_{unique}",
        production_experiment=f"promotions_{unique}",
        artifacts=unique,
    )
