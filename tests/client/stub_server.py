"""A real HTTP server on 127.0.0.1 with scripted answers, recording what it receives."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


@dataclass
class Recorded:
    path: str
    headers: dict[str, str]
    body: dict


@dataclass
class StubServer:
    """Answers each POST with the next scripted ``(status, body)``; the last one repeats."""

    answers: list[tuple[int, object]]
    requests: list[Recorded] = field(default_factory=list)
    url: str = ""
    delay_s: float = 0.0


def _predictions_for(body: dict) -> dict:
    count = len(body.get("instances", []))
    row = [0.0] * 10
    row[3] = 1.0
    return {"predictions": [row] * count}


@contextmanager
def stub_server(answers: list[tuple[int, object]], delay_s: float = 0.0) -> Iterator[StubServer]:
    """Start the stub; ``body == "predict"`` answers one-hot digit 3 per instance."""
    stub = StubServer(answers=list(answers), delay_s=delay_s)

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
                payload = _predictions_for(body)
            data = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    stub.url = f"http://127.0.0.1:{server.server_address[1]}"
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield stub
    finally:
        server.shutdown()
        server.server_close()
