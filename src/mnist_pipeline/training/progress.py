"""Per-epoch progress from training workers to the driver's log.

In distributed mode training happens on Spark executors, whose output goes to
executor logs nobody reads during a ``kedro run``. The driver opens a small TCP
listener (:class:`ProgressListener`) on its own address; the chief worker sends
one JSON line per event (:class:`ProgressSender`) and the driver logs it. The
same path is used in every mode, so the output looks the same everywhere.

A worker that cannot reach the driver trains on and logs locally: progress is
never a reason to fail a training run.
"""

from __future__ import annotations

import json
import logging
import socket
import socketserver
import threading
from collections.abc import Callable
from typing import Any

logger = logging.getLogger("mnist_pipeline.training")

_METRIC_ORDER = ("loss", "accuracy", "val_loss", "val_accuracy")


def format_event(event: dict[str, Any]) -> str:
    """One human line per progress event."""
    kind = event.get("event")
    if kind == "epoch":
        logs = event.get("logs", {})
        names = [k for k in _METRIC_ORDER if k in logs] + sorted(
            k for k in logs if k not in _METRIC_ORDER
        )
        figures = " ".join(f"{name}={logs[name]:.4f}" for name in names)
        return (
            f"epoch {event['epoch']}/{event['epochs']} "
            f"({event.get('seconds', 0.0):.1f} s): {figures}"
        )
    if kind == "start":
        return (
            f"training started: worker {event['worker_index']} of {event['num_workers']} "
            f"(chief), {event['epochs']} epochs"
        )
    if kind == "resume":
        return f"resuming after epoch {event['epoch']} from checkpoint {event['checkpoint_dir']}"
    if kind == "end":
        return (
            f"training finished on {event['num_workers']} worker(s), "
            f"fit {event['fit_time_s']:.1f} s"
        )
    return json.dumps(event)


class ProgressSender:
    """Worker side: sends events as JSON lines to ``address`` (chief only)."""

    def __init__(self, address: tuple[str, int] | list | None, *, enabled: bool = True):
        self._socket: socket.socket | None = None
        self._enabled = enabled
        if not enabled or not address:
            return
        try:
            self._socket = socket.create_connection((address[0], int(address[1])), timeout=10)
        except OSError as exc:
            logger.warning("cannot report progress to %s:%s (%s)", address[0], address[1], exc)

    def send(self, **event: Any) -> None:
        if not self._enabled:
            return
        line = format_event(event)
        if self._socket is None:
            logger.info(line)
            return
        try:
            self._socket.sendall((json.dumps(event) + "\n").encode())
        except OSError as exc:
            logger.warning("progress connection lost (%s); logging here instead", exc)
            self._socket = None
            logger.info(line)

    def close(self) -> None:
        if self._socket is not None:
            self._socket.close()
            self._socket = None


class ProgressListener:
    """Driver side: a TCP server on ``host`` (port chosen by the OS) that logs events.

    Use as a context manager; :attr:`address` is what workers get, :attr:`events`
    everything received.
    """

    def __init__(self, host: str = "127.0.0.1", on_event: Callable[[dict], None] | None = None):
        self.events: list[dict[str, Any]] = []
        self._on_event = on_event
        listener = self

        class _Handler(socketserver.StreamRequestHandler):
            def handle(self) -> None:
                for raw in self.rfile:
                    try:
                        event = json.loads(raw)
                    except ValueError:
                        continue
                    listener.events.append(event)
                    logger.info(format_event(event))
                    if listener._on_event:
                        listener._on_event(event)

        class _Server(socketserver.ThreadingTCPServer):
            daemon_threads = True
            allow_reuse_address = True

        self._server = _Server((host, 0), _Handler)
        self.address = (host, self._server.server_address[1])
        self._thread = threading.Thread(
            target=self._server.serve_forever, name="training-progress", daemon=True
        )

    def __enter__(self) -> ProgressListener:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.shutdown()
        self._server.server_close()
