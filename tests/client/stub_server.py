"""A real HTTP server on 127.0.0.1 with scripted answers, recording what it receives."""

from __future__ import annotations

import json
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


@dataclass
class Recorded:
    path: str
    headers: dict[str, str]
    body: dict
    at: float = field(default_factory=time.monotonic)  # arrival, to order several stubs' requests


@dataclass
class StubServer:
    """Answers each POST with the next scripted ``(status, body)``; the last one repeats."""

    answers: list[tuple[int, object]]
    requests: list[Recorded] = field(default_factory=list)
    url: str = ""
    delay_s: float = 0.0
    digit: int = 3
    stop: Callable[[], None] = lambda: None  # stop listening now (connections are refused)


class _QuietServer(ThreadingHTTPServer):
    """A client that gave up (its timeout passed while the stub was delaying) is expected:
    no traceback for it; anything else is still printed."""

    def handle_error(self, request, client_address) -> None:
        if not isinstance(sys.exc_info()[1], ConnectionError):  # BrokenPipe, ConnectionReset
            super().handle_error(request, client_address)


def _predictions_for(body: dict, digit: int = 3) -> dict:
    count = len(body.get("instances", []))
    row = [0.0] * 10
    row[digit] = 1.0
    return {"predictions": [row] * count}


@contextmanager
def stub_server(
    answers: list[tuple[int, object]], delay_s: float = 0.0, digit: int = 3
) -> Iterator[StubServer]:
    """Start the stub; ``body == "predict"`` answers one-hot ``digit`` per instance."""
    stub = StubServer(answers=list(answers), delay_s=delay_s, digit=digit)

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            length = int(self.headers.get("Content-Length", 0))
            body = json.loads(self.rfile.read(length) or b"{}")
            stub.requests.append(Recorded(self.path, dict(self.headers), body))
            index = min(len(stub.requests), len(stub.answers)) - 1
            status, payload = stub.answers[index]
            if stub.delay_s:
                threading.Event().wait(stub.delay_s)
            if payload == "predict":
                payload = _predictions_for(body, stub.digit)
            data = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def log_message(self, *args: object) -> None:
            pass

    server = _QuietServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    stub.url = f"http://127.0.0.1:{server.server_address[1]}"
    # stop() waits for serve_forever's next poll: 0.05 s, not the default 0.5 s per stub
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    stopped = threading.Event()

    def stop() -> None:
        if not stopped.is_set():
            stopped.set()
            server.shutdown()
            server.server_close()

    stub.stop = stop
    try:
        yield stub
    finally:
        stop()
