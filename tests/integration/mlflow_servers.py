"""Real ``mlflow server`` processes for tests: started on 127.0.0.1, stopped as a process group.

Each server gets its own SQLite backend store (in a pytest run, an empty store copied from
the suite's template: ``tests/mlflow_stores.py``) and its own artifact folder, and serves its
artifacts itself (``--serve-artifacts``): clients only ever talk HTTP to it, so two servers
share no storage (like two Databricks workspaces on two clouds). ``mlflow server`` starts
helper processes (uvicorn workers), so each server runs in its own session / process group
and :meth:`MlflowServer.stop` kills the whole group.

Usage with the fixtures of ``tests/integration/conftest.py``::

    def test_something(mlflow_servers, mlflow_names):  # the module's sandbox + production
        sandbox, production = mlflow_servers.sandbox, mlflow_servers.production
        mlflow.set_tracking_uri(sandbox.url)       # "http://127.0.0.1:<port>"
        mlflow.set_experiment(mlflow_names.experiment)  # names no other test uses
        ...
        sandbox.stop()                             # e.g. prove production needs no sandbox
                                                   # (the next test gets it started again)

    def test_other(mlflow_server_factory):         # fresh ones of its own, stopped after it
        registry = mlflow_server_factory("registry")
        assert registry.is_healthy()

Or without pytest, from any scope you like::

    from tests.integration.mlflow_servers import start_mlflow_server

    with start_mlflow_server(tmp_dir / "production", name="production") as server:
        client = mlflow.MlflowClient(tracking_uri=server.url, registry_uri=server.url)

A module- or session-scoped fixture is a few lines around :func:`start_mlflow_server`
(``with start_mlflow_server(tmp_path_factory.mktemp("prod")) as server: yield server``).
Starting one server takes a few seconds on two cores. A server that does not become
healthy raises :class:`MlflowServerError` with the tail of its log.
"""

from __future__ import annotations

import contextlib
import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import requests

from mnist_pipeline.processes import stop_process_group
from tests.mlflow_stores import empty_store

HOST = "127.0.0.1"
START_TIMEOUT_S = 240.0  # a readiness deadline, not a speed check: CI machines are busy
STOP_TIMEOUT_S = 15.0
# Environment variables of the test process that must not leak into a server (it would
# otherwise pick up a tracking URI or credentials meant for the client side).
_SCRUBBED_PREFIXES = ("MLFLOW_", "DATABRICKS_")


class MlflowServerError(RuntimeError):
    """An ``mlflow server`` that did not start or did not become healthy."""


def live_group_members(pgid: int) -> list[str]:
    """``ps`` lines of the group's processes that are not zombies (for stop assertions)."""
    out = subprocess.run(
        ["ps", "-o", "stat=,cmd=", "-g", str(pgid)], capture_output=True, text=True, check=False
    ).stdout
    return [line for line in out.splitlines() if line.strip() and not line.strip().startswith("Z")]


def free_port(host: str = HOST) -> int:
    """A TCP port that is free on ``host`` right now (the OS picks it)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


@dataclass
class MlflowServer:
    """One ``mlflow server`` process group with its own store and artifact folder.

    Attributes:
        name: a label for messages and the log file name.
        root: the folder that holds ``<name>.db``, ``artifacts/`` and ``server.log``.
        port: the TCP port on 127.0.0.1 (``None``: pick a free one on start).
    """

    name: str
    root: Path
    port: int | None = None
    workers: int = 1
    process: subprocess.Popen | None = field(default=None, repr=False)

    @property
    def url(self) -> str:
        """The tracking and registry URI of this server, ``http://127.0.0.1:<port>``."""
        if self.port is None:
            raise MlflowServerError(f"mlflow server {self.name!r} has no port yet: start it first")
        return f"http://{HOST}:{self.port}"

    @property
    def backend_store_uri(self) -> str:
        return f"sqlite:///{(self.root / f'{self.name}.db').resolve()}"

    @property
    def artifacts_destination(self) -> Path:
        return self.root / "artifacts"

    @property
    def log_path(self) -> Path:
        return self.root / "server.log"

    def command(self) -> list[str]:
        return [
            sys.executable,
            "-m",
            "mlflow",
            "server",
            "--host",
            HOST,
            "--port",
            str(self.port),
            "--workers",
            str(self.workers),
            "--backend-store-uri",
            self.backend_store_uri,
            "--serve-artifacts",
            "--artifacts-destination",
            str(self.artifacts_destination.resolve()),
        ]

    def start(self, timeout_s: float = START_TIMEOUT_S) -> MlflowServer:
        """Start the server in its own process group and wait until ``/health`` answers.

        Keeps the same port across restarts (a restarted server serves the same store).

        Raises:
            MlflowServerError: the process exited or did not become healthy in time.
        """
        return self.launch().wait_healthy(timeout_s)

    def launch(self) -> MlflowServer:
        """Start the process without waiting (see :meth:`wait_healthy`); a no-op if running."""
        if self.is_running():
            return self
        self.root.mkdir(parents=True, exist_ok=True)
        self.artifacts_destination.mkdir(parents=True, exist_ok=True)
        empty_store(self.root / f"{self.name}.db")  # a restart keeps the store it has
        if self.port is None:
            self.port = free_port()
        env = {k: v for k, v in os.environ.items() if not k.startswith(_SCRUBBED_PREFIXES)}
        # The server execs uvicorn from the environment's bin/ folder.
        env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
        # No background job runner: it forks about eight more Python processes that import
        # mlflow (a minute of CPU on two cores) and tracking + registry never need it.
        env["MLFLOW_SERVER_ENABLE_JOB_EXECUTION"] = "false"
        with self.log_path.open("ab") as log:
            self.process = subprocess.Popen(
                self.command(),
                cwd=self.root,
                env=env,
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                start_new_session=True,  # its own process group: stop() kills the helpers too
            )
        return self

    def wait_healthy(self, timeout_s: float = START_TIMEOUT_S) -> MlflowServer:
        """Wait until ``GET /health`` answers 200.

        Raises:
            MlflowServerError: not launched, exited, or not healthy within ``timeout_s``.
        """
        if self.process is None:
            raise MlflowServerError(f"mlflow server {self.name!r} was not launched")
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                code = self.process.returncode
                self.process = None
                raise MlflowServerError(
                    f"mlflow server {self.name!r} on port {self.port} exited with code {code} "
                    f"before it became healthy; log tail:\n{self.log_tail()}"
                )
            if self.is_healthy():
                return self
            time.sleep(0.25)
        self.stop()
        raise MlflowServerError(
            f"mlflow server {self.name!r} at {self.url} was not healthy after {timeout_s:.0f} s; "
            f"log tail:\n{self.log_tail()}"
        )

    def is_running(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def is_healthy(self, timeout_s: float = 2.0) -> bool:
        """Whether ``GET /health`` answers 200 right now."""
        if self.port is None:
            return False
        try:
            return requests.get(f"{self.url}/health", timeout=timeout_s).status_code == 200
        except requests.RequestException:
            return False

    def stop(self, timeout_s: float = STOP_TIMEOUT_S) -> None:
        """Stop the whole process group: SIGTERM, then SIGKILL after ``timeout_s``."""
        process, self.process = self.process, None
        if process is None:
            return
        # mlflow's helpers may outlive the leader: the whole group goes.
        stop_process_group(process, timeout_s)
        # Wait until the port no longer answers, so "server down" really means down.
        deadline = time.monotonic() + timeout_s
        while self.is_healthy(timeout_s=0.5) and time.monotonic() < deadline:
            time.sleep(0.1)

    def log_tail(self, max_chars: int = 4000) -> str:
        try:
            return self.log_path.read_text(errors="replace")[-max_chars:]
        except OSError:
            return "(no log)"


@contextlib.contextmanager
def start_mlflow_server(
    root: Path, name: str = "mlflow", port: int | None = None, workers: int = 1
) -> Iterator[MlflowServer]:
    """Start a server under ``root`` (its store, artifacts, log) and always stop it afterwards."""
    server = MlflowServer(name=name, root=Path(root), port=port, workers=workers)
    try:
        yield server.start()
    finally:
        server.stop()


@dataclass
class MlflowServerPair:
    """A sandbox and a production server that share no storage."""

    sandbox: MlflowServer
    production: MlflowServer

    def stop(self) -> None:
        self.sandbox.stop()
        self.production.stop()


class MlflowServerFactory:
    """Starts named servers under one folder and stops them all in :meth:`close`."""

    def __init__(self, root: Path) -> None:
        self.root = Path(root)
        self.servers: list[MlflowServer] = []

    def __call__(self, name: str = "mlflow", port: int | None = None) -> MlflowServer:
        """Start one server named ``name`` (its folder is ``<root>/<name>``) and wait for it."""
        return self.start_many(name, ports=[port])[0]

    def start_many(self, *names: str, ports: list[int | None] | None = None) -> list[MlflowServer]:
        """Start several servers at once (launched together, then awaited: half the wait)."""
        ports = ports or [None] * len(names)
        servers = [
            MlflowServer(name=name, root=self.root / name, port=port)
            for name, port in zip(names, ports, strict=True)
        ]
        self.servers.extend(servers)
        for server in servers:
            server.launch()
        for server in servers:
            server.wait_healthy()
        return servers

    def pair(self) -> MlflowServerPair:
        """A fresh sandbox and production server, started together."""
        sandbox, production = self.start_many("sandbox", "production")
        return MlflowServerPair(sandbox=sandbox, production=production)

    def close(self) -> None:
        for server in reversed(self.servers):
            server.stop()
