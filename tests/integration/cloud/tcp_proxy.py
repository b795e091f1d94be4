"""A loopback TCP proxy that cuts every connection once N request bytes went through.

``with CuttingProxy(target_port, cut_after=50_000) as proxy:`` → ``proxy.port``. After the
cut, new connections are refused at once (reset), like a network that went away.
"""

from __future__ import annotations

import contextlib
import socket
import threading


class CuttingProxy:
    def __init__(self, target_port: int, cut_after: int, host: str = "127.0.0.1") -> None:
        self.target = (host, target_port)
        self.cut_after = cut_after
        self.sent = 0  # client → server bytes forwarded, all connections together
        self.cut = threading.Event()
        self._lock = threading.Lock()
        self._server = socket.create_server((host, 0))
        self.port = self._server.getsockname()[1]
        self._sockets: list[socket.socket] = []
        self._thread = threading.Thread(target=self._accept, daemon=True)

    def __enter__(self) -> CuttingProxy:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        self.cut.set()
        with contextlib.suppress(OSError):
            self._server.close()
        for sock in list(self._sockets):
            with contextlib.suppress(OSError):
                sock.close()

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self._server.accept()
            except OSError:
                return
            if self.cut.is_set():
                client.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\0\0\0\0\0\0\0")
                client.close()  # reset: the network is gone
                continue
            upstream = socket.create_connection(self.target)
            self._sockets += [client, upstream]
            threading.Thread(target=self._pipe, args=(client, upstream, True), daemon=True).start()
            threading.Thread(target=self._pipe, args=(upstream, client, False), daemon=True).start()

    def _pipe(self, source: socket.socket, sink: socket.socket, counted: bool) -> None:
        try:
            while not self.cut.is_set():
                data = source.recv(65536)
                if not data:
                    break
                if counted:
                    with self._lock:
                        allowed = self.cut_after - self.sent
                        self.sent += len(data)
                    if allowed <= len(data):
                        sink.sendall(data[: max(allowed, 0)])
                        self.cut.set()
                        break
                sink.sendall(data)
        except OSError:
            pass
        finally:
            for sock in (source, sink):
                with contextlib.suppress(OSError):
                    sock.shutdown(socket.SHUT_RDWR)
                with contextlib.suppress(OSError):
                    sock.close()
