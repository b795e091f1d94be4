"""What protects the model server from hostile or careless clients, below the routes: the bearer
token and the exposure rule (:func:`check_exposure`), JSON nesting counted before decoding
(:func:`json_depth`), and header/body read timeouts and a header-size limit
(:func:`guarded_protocol`: uvicorn's httptools protocol, subclassed, since uvicorn has neither;
why this and not h11 or another server: docs/serving.md).
"""

from __future__ import annotations

import asyncio
import hmac
import logging
import os
from http import HTTPStatus
from typing import Any

import httptools
import numpy as np
import orjson
import uvicorn
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from mnist_pipeline.client.http import is_loopback_host
from mnist_pipeline.versions import require

logger = logging.getLogger(__name__)

SERVER_TOKEN_ENV = "MNIST_SERVER_TOKEN"
# The uvicorn releases whose httptools protocol (its private parser callbacks and attributes)
# GuardedHttpToolsProtocol subclasses, [lowest, highest): tested with 0.54 (requirements.lock)
# and 0.55 (the Databricks clusters' lock).
SUPPORTED_UVICORN = ("0.54", "0.56")

# Bytes that matter for nesting: brackets, braces and quotes (strings may hold brackets).
_NOT_STRUCTURE = bytes(c for c in range(256) if c not in b'[]{}"')


class _HeadersTooLarge(httptools.HttpParserError):
    """Raised from a parser callback: stops parsing; answered with 431 (send_400_response)."""


class ExposureError(RuntimeError):
    """A server would listen beyond loopback without a token."""


def server_token(token_env: str = SERVER_TOKEN_ENV) -> str | None:
    """The bearer token clients must send (``$MNIST_SERVER_TOKEN``), None when unset."""
    return os.environ.get(token_env, "").strip() or None


def check_exposure(
    host: str, token: str | None, allow_unauthenticated: bool, token_env: str = SERVER_TOKEN_ENV
) -> None:
    """Refuse a non-loopback bind without a token, unless explicitly allowed (then warn).

    Raises:
        ExposureError: ``host`` is not loopback, no token is set and
            ``allow_unauthenticated`` is false.
    """
    if is_loopback_host(host) or token:
        return
    if not allow_unauthenticated:
        raise ExposureError(
            f"refusing to serve on {host} without authentication: anyone who can reach it "
            f"could use the model. Set ${token_env} to a secret token (clients send it as "
            "'Authorization: Bearer <token>'), bind 127.0.0.1, or pass --allow-unauthenticated "
            "if a gateway in front of it authenticates"
        )
    banner = "!" * 78
    logger.warning(
        "\n%s\nSERVING ON %s WITHOUT AUTHENTICATION (--allow-unauthenticated): anyone who "
        "can reach this port can use the model. Set $%s to require a bearer token.\n%s",
        banner,
        host,
        token_env,
        banner,
    )


def token_matches(authorization: str | None, token: str) -> bool:
    """Whether an ``Authorization`` header carries ``Bearer <token>`` (constant-time compare)."""
    scheme, _, given = (authorization or "").partition(" ")
    return scheme.lower() == "bearer" and hmac.compare_digest(
        given.strip().encode(), token.encode()
    )


def json_depth(body: bytes) -> int:
    """The deepest nesting of arrays and objects in a JSON text, without decoding it.

    Counts brackets and braces outside strings, vectorised: 0.3–0.5 ms for a 32-image
    request, so it can run before every decode of the general path.
    """
    if b"\\" in body:  # escaped backslashes and quotes cannot open or close a string
        body = body.replace(b"\\\\", b"").replace(b'\\"', b"")
    marks = np.frombuffer(body.translate(None, _NOT_STRUCTURE), np.uint8)
    if not marks.size:
        return 0
    step = np.zeros(marks.shape, np.int32)
    step[(marks == ord("[")) | (marks == ord("{"))] = 1
    step[(marks == ord("]")) | (marks == ord("}"))] = -1
    quotes = marks == ord('"')
    if quotes.any():
        step[(np.cumsum(quotes) & 1).astype(bool)] = 0  # brackets inside strings
    return max(int(np.cumsum(step).max()), 0)


def _error_response(status: int, message: str) -> bytes:
    body = orjson.dumps({"error": message})
    phrase = HTTPStatus(status).phrase
    return (
        f"HTTP/1.1 {status} {phrase}\r\ncontent-type: application/json\r\n"
        f"content-length: {len(body)}\r\nconnection: close\r\n\r\n"
    ).encode() + body


class GuardedHttpToolsProtocol(HttpToolsProtocol):
    """uvicorn's httptools protocol with header/body read timeouts and a header-size limit.

    The limits are class attributes; :func:`guarded_protocol` makes a subclass with
    the configured values.
    """

    header_timeout_s: float = 10.0
    body_timeout_s: float = 20.0
    max_header_bytes: int = 16 * 1024

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._guard: asyncio.TimerHandle | None = None
        self._in_headers = False
        self._header_bytes = 0  # bytes received while in the headers (trickled or not)
        self._parsed_header_bytes = 0  # request line and headers as parsed
        self._oversized = False

    # -- timers -----------------------------------------------------------------------
    def _arm(self, seconds: float, phase: str) -> None:
        self._disarm()
        self._guard = self.loop.call_later(seconds, self._timed_out, phase, seconds)

    def _disarm(self) -> None:
        if self._guard is not None:
            self._guard.cancel()
            self._guard = None

    def _refuse(self, status: int, message: str) -> None:
        self._disarm()
        if self.transport.is_closing():
            return
        if self.cycle is None or not self.cycle.response_started:
            self.transport.write(_error_response(status, message))
        if self.cycle is not None:
            self.cycle.keep_alive = False
        self.transport.close()

    def _timed_out(self, phase: str, seconds: float) -> None:
        self._guard = None
        logger.warning(
            "closing a connection from %s: %s not received in %g s", self.client, phase, seconds
        )
        self._refuse(408, f"request {phase} not received within {seconds:g} s")

    # -- connection and parser callbacks ---------------------------------------------
    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._start_headers()

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm()
        super().connection_lost(exc)

    def _start_headers(self) -> None:
        self._in_headers, self._header_bytes, self._parsed_header_bytes = True, 0, 0
        self._arm(self.header_timeout_s, "headers")

    def _headers_too_large(self) -> None:
        self._refuse(431, f"request headers exceed the limit of {self.max_header_bytes:,} bytes")

    def data_received(self, data: bytes) -> None:
        if self._in_headers:
            self._header_bytes += len(data)
        super().data_received(data)
        # headers still unfinished after more bytes than allowed (e.g. one endless header)
        if self._in_headers and self._header_bytes > self.max_header_bytes:
            self._headers_too_large()

    def send_400_response(self, msg: str) -> None:
        if self._oversized:
            self._headers_too_large()
        else:
            super().send_400_response(msg)

    def _count_header_bytes(self, size: int) -> None:
        self._parsed_header_bytes += size
        if self._parsed_header_bytes > self.max_header_bytes:
            self._oversized = True
            raise _HeadersTooLarge("request headers too large")

    def on_message_begin(self) -> None:
        super().on_message_begin()
        if not self._in_headers:  # the next request on a kept-alive connection
            self._start_headers()

    def on_url(self, url: bytes) -> None:
        self._count_header_bytes(len(url))
        super().on_url(url)

    def on_header(self, name: bytes, value: bytes) -> None:
        self._count_header_bytes(len(name) + len(value) + 4)
        super().on_header(name, value)

    def on_headers_complete(self) -> None:
        self._in_headers = False
        self._arm(self.body_timeout_s, "body")
        super().on_headers_complete()

    def on_message_complete(self) -> None:
        self._disarm()
        super().on_message_complete()


def guarded_protocol(
    header_timeout_s: float, body_timeout_s: float, max_header_bytes: int
) -> type[GuardedHttpToolsProtocol]:
    """A :class:`GuardedHttpToolsProtocol` with these limits, for ``uvicorn.Config(http=...)``.

    Raises:
        UnsupportedVersionError: uvicorn is outside :data:`SUPPORTED_UVICORN`.
    """
    require("uvicorn", uvicorn.__version__, SUPPORTED_UVICORN, user=__name__)
    return type(
        "GuardedHttpToolsProtocol",
        (GuardedHttpToolsProtocol,),
        {
            "header_timeout_s": float(header_timeout_s),
            "body_timeout_s": float(body_timeout_s),
            "max_header_bytes": int(max_header_bytes),
        },
    )
