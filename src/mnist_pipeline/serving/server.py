"""Start and stop the model server: in the foreground (users) or as a child process (checks).

``run_server`` loads the model, binds the socket, then serves with uvicorn until
SIGINT/SIGTERM (Ctrl-C stops it cleanly). :class:`ServerProcess` runs the same server
as ``python -m mnist_pipeline.serving`` in its own process group, waits until it
answers, and stops the whole group: that is how the deploy pipeline validates a model
in a real server, like TFX's InfraValidator. The child holds a lifeline to its parent
(:func:`~mnist_pipeline.processes.lifeline`): if the parent dies, even by SIGKILL, the
child removes its temporary folder and stops.

Request limits, read timeouts and the token check are in :mod:`.guards`.
"""

from __future__ import annotations

import json
import logging
import os
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import requests

from mnist_pipeline import storage
from mnist_pipeline.parameters.operations import InferenceLog, Serving
from mnist_pipeline.processes import lifeline, stop_process_group
from mnist_pipeline.redaction import redact
from mnist_pipeline.registry.store import resolve_alias

from .app import create_app
from .guards import SERVER_TOKEN_ENV, ExposureError, check_exposure, guarded_protocol, server_token
from .inference_log import local_folder, open_inference_log
from .model import load_keras_model
from .predictor import BatchingPredictor, CompiledModel, configure_threads

logger = logging.getLogger(__name__)

LOOPBACK = "127.0.0.1"
_ALIAS_URI = re.compile(r"^models:/(?P<name>[^/@]+)@(?P<alias>[^/]+)$")
_VERSION_URI = re.compile(r"^models:/(?P<name>[^/@]+)/(?P<version>[^/]+)$")


class ServerStartError(RuntimeError):
    """The model server process exited or did not answer in time."""


class ServerSettings(Serving):
    """How to run the server: the ``serving`` parameters (:class:`~mnist_pipeline.parameters.
    operations.Serving`: host, port, request limits, read timeouts, thread pools, exposure)
    and the inference log's (``inference_log``; ``kedro serve`` only: deploy's validation
    server never logs). Validated by the schema itself; built from code with its defaults.
    """

    inference_log: InferenceLog = InferenceLog()

    def cli_args(self) -> list[str]:
        """The settings as ``python -m mnist_pipeline.serving`` options (host and port
        aside): ``--max-batch-size=8``, ``--inference-log-path=...``, a flag when true."""
        values = self.model_dump(exclude={"host", "port", "inference_log"})
        log = self.inference_log.model_dump(exclude={"storage_options"})  # no secrets in argv
        values |= {f"inference_log.{k}": v for k, v in log.items()}
        args = []
        for key, value in values.items():
            option = f"--{key.replace('_', '-').replace('.', '-')}"
            if isinstance(value, bool):
                args += [option] if value else []
            else:
                args.append(f"{option}={value}")
        return args


def describe_model(model_uri: str, registry_uri: str | None) -> dict[str, Any]:
    """Name, version and pinned URI of what ``model_uri`` points at (aliases resolved)."""
    info: dict[str, Any] = {"model_uri": model_uri, "registry_uri": redact(registry_uri or "")}
    if alias := _ALIAS_URI.match(model_uri):
        reference = resolve_alias(alias["name"], alias["alias"], registry_uri or "")
        info.update(reference.to_dict())
    elif version := _VERSION_URI.match(model_uri):
        info.update(name=version["name"], version=version["version"])
    else:
        info.update(name="model", version="")
    return info


def bind_socket(host: str, port: int) -> socket.socket:
    """A listening TCP socket on ``host:port`` (port 0: a free one)."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, int(port)))
    except (OSError, OverflowError, ValueError) as exc:  # in use, no such address, 70000
        sock.close()
        reason = getattr(exc, "strerror", None) or exc
        raise ServerStartError(f"cannot bind {host}:{port}: {reason}") from None
    sock.listen(2048)
    sock.set_inheritable(True)
    return sock


def run_server(
    model_uri: str,
    registry_uri: str | None,
    settings: ServerSettings,
    *,
    ready_file: str | Path | None = None,
    token_env: str = SERVER_TOKEN_ENV,
) -> None:
    """Load the model and serve it until SIGINT/SIGTERM (blocking).

    Args:
        model_uri: ``models:/<name>@<alias>`` (resolved once, at start), a pinned
            ``models:/<name>/<version>`` or any MLflow model URI.
        registry_uri: the production registry.
        settings: host, port, limits, timeouts and threads.
        ready_file: once serving, write ``{"url", "pid", "model"}`` there (atomically).
        token_env: environment variable holding the bearer token clients must send
            (unset: no check, allowed on loopback only unless
            ``settings.allow_unauthenticated``).

    Raises:
        ServerStartError: a non-loopback host without a token (and without
            ``allow_unauthenticated``), a port that cannot be bound.
        InferenceLogError: an inference log folder that cannot be created or written.
    """
    token = server_token(token_env)
    try:
        check_exposure(settings.host, token, settings.allow_unauthenticated, token_env)
    except ExposureError as exc:
        raise ServerStartError(str(exc)) from exc
    if settings.inference_log.path:  # settings first: a log folder that cannot be used fails
        local_folder(settings.inference_log)
    info = describe_model(model_uri, registry_uri)  # fails fast on a wrong name or alias
    inference_log = open_inference_log(settings.inference_log, info)
    predictor = None
    try:
        configure_threads(settings.intra_op_threads, settings.inter_op_threads)
        pinned = info.get("model_uri", model_uri)
        started = time.perf_counter()
        model = load_keras_model(pinned, registry_uri)
        predictor = BatchingPredictor(CompiledModel(model), settings.max_batch_images)
        app = create_app(predictor, info, settings, token=token, inference_log=inference_log)
        sock = bind_socket(settings.host, settings.port)
        host, port = sock.getsockname()[:2]
        url = f"http://{host}:{port}"
        logger.info(
            "Serving %s (version %s) at %s/v1/models/%s:predict, loaded in %.1f s%s. "
            "Ctrl-C stops it.",
            pinned,
            info.get("version", "?"),
            url,
            info["name"],
            time.perf_counter() - started,
            f", bearer token required (${token_env})" if token else "",
        )
        server = uvicorn_server(app, settings)
        if ready_file:
            storage.write_json(str(ready_file), {"url": url, "pid": os.getpid(), "model": info})
        try:
            server.run(sockets=[sock])
        except KeyboardInterrupt:
            # uvicorn shuts down gracefully on SIGINT, then re-raises it: Ctrl-C is a clean stop.
            pass
        finally:
            sock.close()
            logger.info("Server at %s stopped.", url)
    finally:
        if predictor is not None:
            predictor.close()
        if inference_log is not None:
            inference_log.close()


def uvicorn_server(app: Any, settings: ServerSettings) -> Any:
    """A ``uvicorn.Server`` for ``app`` with the read timeouts and header limit of ``settings``.

    uvicorn (uvloop + httptools) through :class:`~.guards.GuardedHttpToolsProtocol`;
    serve it with ``server.run(sockets=[bind_socket(...)])``.
    """
    import uvicorn

    config = uvicorn.Config(
        app,
        loop="uvloop",
        http=guarded_protocol(
            settings.header_timeout_s, settings.body_timeout_s, settings.max_header_bytes
        ),
        lifespan="off",
        access_log=False,
        log_level="warning",
        timeout_keep_alive=30,
        backlog=2048,
    )
    return uvicorn.Server(config)


@dataclass
class ServerProcess:
    """The model server as a child process group on 127.0.0.1 (port 0: a free port).

    Use as a context manager, or call :meth:`start` and :meth:`stop`. The child gets
    ``token`` as its bearer token (None: no token, the child does not inherit
    ``$MNIST_SERVER_TOKEN``), and a lifeline: should this process die before
    :meth:`stop`, the child removes the workdir this object made and stops.
    """

    model_uri: str
    registry_uri: str | None
    settings: ServerSettings = field(default_factory=lambda: ServerSettings(port=0))
    workdir: Path | None = None
    startup_timeout_s: float = 180.0
    url: str | None = None
    startup_s: float | None = None
    info: dict[str, Any] = field(default_factory=dict)
    token: str | None = field(default=None, repr=False)
    process: subprocess.Popen | None = field(default=None, repr=False)
    # A workdir this object made itself is removed by stop(); a given one is kept.
    _owns_workdir: bool = field(default=False, repr=False)
    _lifeline: int | None = field(default=None, repr=False)  # write end; the child reads

    @property
    def auth_headers(self) -> dict[str, str]:
        """``Authorization`` header for requests to this server (empty without a token)."""
        return {"Authorization": f"Bearer {self.token}"} if self.token else {}

    def command(self, ready_file: Path) -> list[str]:
        args = [
            sys.executable,
            "-m",
            "mnist_pipeline.serving",
            "--model-uri",
            self.model_uri,
            "--host",
            self.settings.host,
            "--port",
            str(self.settings.port),
            "--ready-file",
            str(ready_file),
            *self.settings.cli_args(),
        ]
        if self.registry_uri:
            args += ["--registry-uri", self.registry_uri]
        return args

    def _environment(self) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if k != SERVER_TOKEN_ENV}
        if self.token:
            env[SERVER_TOKEN_ENV] = self.token
        return env

    @property
    def log_path(self) -> Path:
        return self._workdir / "server.log"

    @property
    def _workdir(self) -> Path:
        if self.workdir is None:
            self.workdir = Path(tempfile.mkdtemp(prefix="mnist-server-"))
            self._owns_workdir = True
        return self.workdir

    def start(self) -> ServerProcess:
        """Start the server and wait until ``GET /health`` answers.

        Raises:
            ServerStartError: the process exited (its log tail says why) or did
                not answer within ``startup_timeout_s``.
        """
        ready_file = self._workdir / "ready.json"
        ready_file.unlink(missing_ok=True)
        started = time.perf_counter()
        read_fd, self._lifeline = lifeline()
        command = [*self.command(ready_file), "--parent-fd", str(read_fd)]
        if self._owns_workdir:
            command += ["--orphan-cleanup", str(self._workdir)]
        try:
            with self.log_path.open("ab") as log:
                self.process = subprocess.Popen(
                    command,
                    stdout=log,
                    stderr=subprocess.STDOUT,
                    stdin=subprocess.DEVNULL,
                    pass_fds=(read_fd,),
                    env=self._environment(),
                    start_new_session=True,  # own process group: stop() ends all it started
                )
        finally:
            os.close(read_fd)
        deadline = started + self.startup_timeout_s
        while time.perf_counter() < deadline:
            if self.process.poll() is not None:
                code = self.process.returncode
                message = (
                    f"the model server for {self.model_uri} exited with code {code} before it "
                    f"was ready; log tail:\n{self.log_tail()}"
                )
                self.stop()
                raise ServerStartError(message)
            if self.url is None and ready_file.is_file():
                ready = json.loads(ready_file.read_text())
                self.url, self.info = ready["url"], ready.get("model", {})
            if self.url and self.is_healthy():
                self.startup_s = time.perf_counter() - started
                return self
            time.sleep(0.1)
        message = (
            f"the model server for {self.model_uri} was not ready after "
            f"{self.startup_timeout_s:.0f} s; log tail:\n{self.log_tail()}"
        )
        self.stop()
        raise ServerStartError(message)

    def is_healthy(self, timeout_s: float = 2.0) -> bool:
        if not self.url:
            return False
        try:
            return requests.get(f"{self.url}/health", timeout=timeout_s).status_code == 200
        except requests.RequestException:
            return False

    @property
    def predict_url(self) -> str:
        return f"{self.url}/v1/models/{self.info.get('name', 'model')}:predict"

    def stop(self, timeout_s: float = 15.0) -> None:
        """SIGTERM the process group (a graceful uvicorn shutdown), SIGKILL what is left.

        A temporary workdir this object created (log, ready file) is removed.
        """
        process, self.process = self.process, None
        stop_process_group(process, timeout_s)
        if self._lifeline is not None:
            os.close(self._lifeline)
            self._lifeline = None
        if self._owns_workdir and self.workdir is not None:
            shutil.rmtree(self.workdir, ignore_errors=True)
            self.workdir, self._owns_workdir = None, False

    def log_tail(self, max_chars: int = 3000) -> str:
        try:
            return self.log_path.read_text(errors="replace")[-max_chars:]
        except OSError:
            return "(no log)"

    def __enter__(self) -> ServerProcess:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
