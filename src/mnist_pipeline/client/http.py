"""POST images to one or more model servers (``kedro serve``, ``mlflow models serve``,
Databricks Model Serving) and read the digits back: tokens only over https or loopback,
failover between endpoints, and a deadline on the whole answer (docs/serving.md, "The client").
"""

from __future__ import annotations

import contextlib
import ipaddress
import json
import os
import socket
import threading
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import numpy as np
import requests
import urllib3.poolmanager
from requests.adapters import HTTPAdapter
from urllib3.connection import HTTPConnection, HTTPSConnection
from urllib3.connectionpool import HTTPConnectionPool, HTTPSConnectionPool

DEFAULT_TOKEN_ENV = "MNIST_SERVING_TOKEN"
DEFAULT_PATH = "/invocations"
DEFAULT_DEADLINE_S = 15.0
CUT_GRACE_S = 0.25  # the watchdog cuts an attempt this long after its time limit


class ClientError(RuntimeError):
    """The prediction could not be obtained; the message says why."""


class ServerRefusedError(ClientError):
    """The server answered 4xx: the request is wrong (or unauthorised). Not retried."""

    def __init__(self, message: str, status: int, server_message: str) -> None:
        super().__init__(message)
        self.status = status
        self.server_message = server_message


class ServerUnavailableError(ClientError):
    """No usable answer from any endpoint (connection refused, timeouts, 5xx) in time."""


@dataclass(frozen=True)
class Endpoint:
    """A prediction URL and the environment variable holding its bearer token (None: none)."""

    url: str
    token_env: str | None = DEFAULT_TOKEN_ENV


@dataclass
class Answer:
    """Probabilities (N, 10), the endpoint that gave them, and what failed before it."""

    probabilities: np.ndarray
    endpoint: str
    failures: list[str] = field(default_factory=list)


class _Watch:
    """The sockets of one attempt, shut down when its time is up."""

    def __init__(self) -> None:
        self.expired = False
        self._sockets: list[socket.socket] = []
        self._lock = threading.Lock()

    def add(self, sock: socket.socket | None) -> None:
        if sock is None:
            return
        with self._lock:
            self._sockets.append(sock)
            if self.expired:
                _shutdown(sock)

    def expire(self) -> None:
        with self._lock:
            self.expired = True
            for sock in self._sockets:
                _shutdown(sock)


def _shutdown(sock: socket.socket) -> None:
    """Unblock a read in another thread (the descriptor itself: TLS sockets too)."""
    with contextlib.suppress(OSError):
        socket.socket.shutdown(sock, socket.SHUT_RDWR)


_CURRENT = threading.local()  # the watch of the attempt running in this thread


def _watch(sock: socket.socket | None) -> None:
    watch = getattr(_CURRENT, "watch", None)
    if watch is not None:
        watch.add(sock)


@contextlib.contextmanager
def _time_limit(seconds: float) -> Iterator[_Watch]:
    """Connections opened or used in this block (this thread) are cut after ``seconds``."""
    watch = _Watch()
    timer = threading.Timer(max(0.0, seconds), watch.expire)
    timer.daemon = True
    _CURRENT.watch = watch
    timer.start()
    try:
        yield watch
    finally:
        timer.cancel()
        _CURRENT.watch = None


class _WatchedConnection:
    """Registers its socket with the running attempt's watch: on connect, before each answer."""

    sock: socket.socket | None

    def connect(self) -> None:
        super().connect()  # type: ignore[misc]
        _watch(self.sock)

    def getresponse(self, *args: Any, **kwargs: Any) -> Any:
        _watch(self.sock)  # a kept-alive connection, connected in an earlier attempt
        return super().getresponse(*args, **kwargs)  # type: ignore[misc]


class _WatchedHTTPConnection(_WatchedConnection, HTTPConnection):
    pass


class _WatchedHTTPSConnection(_WatchedConnection, HTTPSConnection):
    pass


class _WatchedHTTPPool(HTTPConnectionPool):
    ConnectionCls = _WatchedHTTPConnection


class _WatchedHTTPSPool(HTTPSConnectionPool):
    ConnectionCls = _WatchedHTTPSConnection


def _watch_pools(manager: Any) -> Any:
    # Only urllib3's own pools are replaced (a SOCKS proxy's keep theirs: per-read limits only).
    if (
        getattr(manager, "pool_classes_by_scheme", None)
        == urllib3.poolmanager.pool_classes_by_scheme
    ):
        manager.pool_classes_by_scheme = {"http": _WatchedHTTPPool, "https": _WatchedHTTPSPool}
    return manager


class DeadlineAdapter(HTTPAdapter):
    """requests' adapter whose connections an attempt's time limit can cut, mid-answer."""

    def init_poolmanager(self, *args: Any, **kwargs: Any) -> None:
        super().init_poolmanager(*args, **kwargs)
        _watch_pools(self.poolmanager)

    def proxy_manager_for(self, proxy: str, **proxy_kwargs: Any) -> Any:
        return _watch_pools(super().proxy_manager_for(proxy, **proxy_kwargs))


def deadline_session() -> requests.Session:
    """A ``requests.Session`` whose attempts the client bounds in total time (pass it as
    ``session=`` to reuse connections; a plain Session bounds each socket read only)."""
    session = requests.Session()
    session.mount("http://", DeadlineAdapter())
    session.mount("https://", DeadlineAdapter())
    return session


def check_time_limits(timeout_s: float, deadline_s: float | None, retries: int) -> None:
    """Refuse limits that cannot work (a zero timeout would end every attempt at once).

    Raises:
        ClientError: naming the setting and the value.
    """
    if not timeout_s > 0:
        raise ClientError(f"the timeout must be a positive number of seconds, found {timeout_s:g}")
    if deadline_s is not None and not deadline_s > 0:
        raise ClientError(
            f"the deadline must be a positive number of seconds, found {deadline_s:g}"
        )
    if retries < 0:
        raise ClientError(f"retries must be 0 or more, found {retries}")


def endpoint_url(url: str) -> str:
    """``http://host:port`` alone → ``http://host:port/invocations``; full URLs unchanged."""
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise ClientError(f"invalid server URL {url!r}: expected http(s)://host[:port]/path")
    if parts.path in ("", "/"):
        parts = parts._replace(path=DEFAULT_PATH)
    return urlunsplit(parts)


def is_loopback_host(host: str) -> bool:
    """Only ``localhost`` and IP literals of 127.0.0.0/8 or ``::1`` (not ``127.evil.com``)."""
    host = host.lower()
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def check_token_transport(url: str, headers: dict[str, str], token_env: str | None) -> None:
    """Refuse to send a bearer token in clear text to another machine.

    Over plain ``http`` a token is readable by anyone on the path; only
    loopback (a local server, see :func:`is_loopback_host`) is exempt.

    Raises:
        ClientError: a token would go over ``http`` to a non-loopback host.
    """
    parts = urlsplit(url)
    host = (parts.hostname or "").lower()
    if "Authorization" in headers and parts.scheme == "http" and not is_loopback_host(host):
        raise ClientError(
            f"refusing to send the bearer token from ${token_env} over plain http to {host}: "
            "use an https:// URL, or unset the variable for a server that needs no token"
        )


def auth_headers(token_env: str | None = DEFAULT_TOKEN_ENV) -> dict[str, str]:
    """``{"Authorization": "Bearer …"}`` when ``token_env`` names a set variable, else ``{}``."""
    token = os.environ.get(token_env or "", "").strip()
    return {"Authorization": f"Bearer {token}"} if token else {}


def _server_message(answer: requests.Response) -> str:
    try:
        body = answer.json()
    except ValueError:
        return answer.text.strip()[:500] or answer.reason
    if isinstance(body, dict):
        for key in ("error", "message", "detail"):
            if body.get(key):
                return str(body[key])
    return str(body)[:500]


def as_endpoints(
    urls: str | Endpoint | Sequence[str | Endpoint], token_env: str | None = DEFAULT_TOKEN_ENV
) -> list[Endpoint]:
    """One URL, an :class:`Endpoint` or a list of them → endpoints (URLs get ``token_env``)."""
    items = [urls] if isinstance(urls, str | Endpoint) else list(urls)
    if not items:
        raise ClientError("no server URL given")
    return [item if isinstance(item, Endpoint) else Endpoint(item, token_env) for item in items]


@dataclass
class _Target:
    url: str
    headers: dict[str, str]
    direct: bool  # a token over plain http (loopback only): never through an environment proxy


def _targets(endpoints: list[Endpoint]) -> list[_Target]:
    targets = []
    for endpoint in endpoints:
        url = endpoint_url(endpoint.url)
        headers = {"Content-Type": "application/json", **auth_headers(endpoint.token_env)}
        check_token_transport(url, headers, endpoint.token_env)
        direct = "Authorization" in headers and urlsplit(url).scheme == "http"
        targets.append(_Target(url, headers, direct))
    return targets


def request_predictions(
    endpoints: str | Endpoint | Sequence[str | Endpoint],
    images: np.ndarray,
    *,
    token_env: str | None = DEFAULT_TOKEN_ENV,
    timeout_s: float = 10.0,
    retries: int = 3,
    backoff_s: float = 0.5,
    deadline_s: float | None = DEFAULT_DEADLINE_S,
    session: requests.Session | None = None,
    request_format: str = "instances",
) -> Answer:
    """Send uint8 (N, 28, 28) images to the first endpoint that answers; the :class:`Answer`.

    Args:
        endpoints: one URL or several, tried in this order in every round (a bare
            ``http://host:port`` gets ``/invocations``); plain URLs use ``token_env``.
        images: MNIST-convention images.
        token_env: environment variable holding a bearer token (unset: no header).
        timeout_s: the most seconds one attempt may take, from connecting to the end of
            the answer (cut to what is left of the deadline).
        retries: further rounds after a round in which no endpoint answered.
        backoff_s: wait before the second round; doubled before each next one.
        deadline_s: the most seconds for everything (None: no limit).
        session: a session from :func:`deadline_session`, to reuse connections.
        request_format: the body, ``instances`` or ``dataframe_split`` (:func:`request_body`).

    Raises:
        ServerRefusedError: a 4xx answer (with the server's message); no failover.
        ServerUnavailableError: no endpoint answered (only connection errors,
            timeouts, 5xx) within the rounds or the deadline.
        ClientError: a 2xx answer without the expected predictions, a token that
            would travel in clear text, or a timeout, deadline or retries that cannot work.
    """
    check_time_limits(timeout_s, deadline_s, retries)
    targets = _targets(as_endpoints(endpoints, token_env))
    body = request_body(images, request_format)
    count = len(images)
    began = time.monotonic()
    deadline = None if deadline_s is None else began + float(deadline_s)
    shared = session or deadline_session()
    direct: requests.Session | None = None
    rounds, failures, attempts = max(0, int(retries)) + 1, [], 0
    last_problem: dict[str, str] = {}
    out_of_time = False
    try:
        for number in range(rounds):
            if number:
                pause = backoff_s * 2 ** (number - 1)
                if deadline is not None:
                    pause = min(pause, max(0.0, deadline - time.monotonic()))
                time.sleep(pause)
            for target in targets:
                wait = timeout_s
                if deadline is not None:
                    wait = min(timeout_s, deadline - time.monotonic())
                    if wait <= 0:
                        out_of_time = True
                        break
                if target.direct and direct is None:
                    direct = deadline_session()
                    direct.trust_env = False  # no HTTP(S)_PROXY, no .netrc for a clear-text token
                http = direct if target.direct else shared
                attempts += 1
                # A moment after requests' own read timeout, which names a silent server
                # ("no answer"); the watchdog catches the answer that trickles.
                with _time_limit(wait + CUT_GRACE_S) as watch:
                    try:
                        answer = http.post(
                            target.url, data=body, headers=target.headers, timeout=wait
                        )
                    except requests.RequestException as exc:
                        answer = None
                        problem = _attempt_problem(exc, wait, watch.expired)
                if answer is not None and watch.expired:  # cut short: what came is not it
                    answer, problem = None, f"no complete answer within {wait:g} s"
                if answer is not None:
                    if answer.status_code < 400:
                        return Answer(_predictions(answer, target.url, count), target.url, failures)
                    message = _server_message(answer)
                    if answer.status_code < 500:
                        raise ServerRefusedError(
                            f"{target.url} refused the request with {answer.status_code} "
                            f"{answer.reason}: {message}",
                            answer.status_code,
                            message,
                        )
                    problem = f"server error {answer.status_code}: {message}"
                last_problem[target.url] = problem
                failures.append(f"{target.url}: {problem}")
            if out_of_time:
                break
    finally:
        if session is None:
            shared.close()
        if direct is not None:
            direct.close()
    spent = time.monotonic() - began
    why = f"deadline of {deadline_s:g} s reached, " if out_of_time else ""
    plural = "s" * (attempts != 1)
    if len(targets) == 1:
        url = targets[0].url
        raise ServerUnavailableError(
            f"{url} is unreachable: {last_problem.get(url, 'no attempt made')} "
            f"({why}after {attempts} attempt{plural} in {spent:.1f} s)"
        )
    details = "; ".join(f"{t.url}: {last_problem.get(t.url, 'not tried')}" for t in targets)
    raise ServerUnavailableError(
        f"none of the {len(targets)} endpoints answered ({why}{attempts} attempt{plural} in "
        f"{spent:.1f} s): {details}"
    )


REQUEST_FORMATS = ("instances", "dataframe_split")


def request_body(images: np.ndarray, request_format: str = "instances") -> bytes:
    """The JSON body for uint8 (N, 28, 28) images, in one of MLflow's request formats.

    ``instances``: ``{"instances": [28x28 image, ...]}``; ``dataframe_split``:
    ``{"dataframe_split": {"columns": ["image"], "data": [[784 pixels], ...]}}`` (each image
    flattened row-major). Both are what ``mlflow models serve``, Databricks Model Serving
    and ``kedro serve`` accept.
    """
    pixels = np.asarray(images).astype(int)
    if request_format == "instances":
        return json.dumps({"instances": pixels.tolist()}).encode()
    if request_format == "dataframe_split":
        rows = [[image.ravel().tolist()] for image in pixels]
        return json.dumps({"dataframe_split": {"columns": ["image"], "data": rows}}).encode()
    raise ValueError(f"unknown request format {request_format!r}: use one of {REQUEST_FORMATS}")


def post_images(
    url: str | Endpoint | Sequence[str | Endpoint], images: np.ndarray, **options: Any
) -> np.ndarray:
    """Send uint8 (N, 28, 28) images, return (N, 10) probabilities: :func:`request_predictions`
    (same keyword arguments and errors) without saying which endpoint answered."""
    return request_predictions(url, images, **options).probabilities


def _attempt_problem(exc: requests.RequestException, wait: float, cut: bool) -> str:
    """What went wrong with one attempt, in words."""
    if cut:  # the watchdog shut the socket: the answer did not complete in time
        return f"no complete answer within {wait:g} s"
    if isinstance(exc, requests.Timeout):
        return f"no answer within {wait:g} s"
    if isinstance(exc, requests.ConnectionError):
        return f"cannot connect ({_reason(exc)})"
    raise exc


def _reason(exc: Exception) -> str:
    text = str(exc)
    for marker in ("Connection refused", "Name or service not known", "No route to host"):
        if marker in text:
            return marker
    return type(exc).__name__


def _predictions(answer: requests.Response, target: str, count: int) -> np.ndarray:
    try:
        payload: Any = answer.json()
        predictions = np.asarray(payload["predictions"], dtype=np.float64)
    except (ValueError, KeyError, TypeError) as exc:
        raise ClientError(
            f'{target} answered {answer.status_code} without {{"predictions": [...]}}: '
            f"{answer.text[:300]!r}"
        ) from exc
    if predictions.shape != (count, 10):
        raise ClientError(
            f"{target} answered predictions of shape {predictions.shape}; expected ({count}, 10)"
        )
    return predictions
