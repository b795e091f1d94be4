"""POST images to a model server and read the digits back.

Works against the local server (``kedro serve``), ``mlflow models serve`` and Databricks
model serving (``https://<workspace>/serving-endpoints/<name>/invocations``): all take
``{"instances": [...]}`` and answer ``{"predictions": [[10 probabilities], ...]}``.

* A bearer token is read from an environment variable (never from the command line,
  never logged) and sent as ``Authorization: Bearer <token>``.
* Connection errors, timeouts and 5xx answers are retried with exponential backoff;
  4xx answers are not (the request itself is wrong) and raise :class:`ServerRefusedError`
  with the server's own message.
"""

from __future__ import annotations

import os
import time
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import numpy as np
import requests

DEFAULT_TOKEN_ENV = "MNIST_SERVING_TOKEN"
DEFAULT_PATH = "/invocations"


class ClientError(RuntimeError):
    """The prediction could not be obtained; the message says why."""


class ServerRefusedError(ClientError):
    """The server answered 4xx: the request is wrong (or unauthorised). Not retried."""

    def __init__(self, message: str, status: int, server_message: str) -> None:
        super().__init__(message)
        self.status = status
        self.server_message = server_message


class ServerUnavailableError(ClientError):
    """No usable answer after all retries (connection refused, timeouts, 5xx)."""


def endpoint_url(url: str) -> str:
    """``http://host:port`` alone → ``http://host:port/invocations``; full URLs unchanged."""
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise ClientError(f"invalid server URL {url!r}: expected http(s)://host[:port]/path")
    if parts.path in ("", "/"):
        parts = parts._replace(path=DEFAULT_PATH)
    return urlunsplit(parts)


_LOOPBACK_HOSTS = {"localhost", "127.0.0.1", "::1"}


def check_token_transport(url: str, headers: dict[str, str], token_env: str | None) -> None:
    """Refuse to send a bearer token in clear text to another machine.

    Over plain ``http`` a token is readable by anyone on the path; only
    loopback (a local server) is exempt.

    Raises:
        ClientError: a token would go over ``http`` to a non-loopback host.
    """
    parts = urlsplit(url)
    host = (parts.hostname or "").lower()
    is_loopback = host in _LOOPBACK_HOSTS or host.startswith("127.")
    if "Authorization" in headers and parts.scheme == "http" and not is_loopback:
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


def post_images(
    url: str,
    images: np.ndarray,
    *,
    token_env: str | None = DEFAULT_TOKEN_ENV,
    timeout_s: float = 10.0,
    retries: int = 3,
    backoff_s: float = 0.5,
    session: requests.Session | None = None,
) -> np.ndarray:
    """Send uint8 (N, 28, 28) images, return (N, 10) probabilities.

    Args:
        url: the endpoint (a bare ``http://host:port`` gets ``/invocations``).
        images: MNIST-convention images.
        token_env: environment variable holding a bearer token (unset: no header).
        timeout_s: connect and read timeout of each attempt.
        retries: further attempts after a connection error, timeout or 5xx.
        backoff_s: wait before the first retry; doubled before each next one.
        session: a ``requests.Session`` to reuse connections.

    Raises:
        ServerRefusedError: a 4xx answer (with the server's message).
        ServerUnavailableError: no answer, or only 5xx, after all attempts.
        ClientError: a 2xx answer without the expected predictions.
    """
    target = endpoint_url(url)
    body = {"instances": np.asarray(images).astype(int).tolist()}
    headers = {"Content-Type": "application/json", **auth_headers(token_env)}
    check_token_transport(target, headers, token_env)
    http = session or requests.Session()
    attempts, problem = max(0, int(retries)) + 1, ""
    try:
        for attempt in range(attempts):
            if attempt:
                time.sleep(backoff_s * 2 ** (attempt - 1))
            try:
                answer = http.post(target, json=body, headers=headers, timeout=timeout_s)
            except requests.Timeout:
                problem = f"no answer within {timeout_s:g} s"
                continue
            except requests.ConnectionError as exc:
                problem = f"cannot connect ({_reason(exc)})"
                continue
            if answer.status_code >= 500:
                problem = f"server error {answer.status_code}: {_server_message(answer)}"
                continue
            if answer.status_code >= 400:
                message = _server_message(answer)
                raise ServerRefusedError(
                    f"{target} refused the request with {answer.status_code} "
                    f"{answer.reason}: {message}",
                    answer.status_code,
                    message,
                )
            return _predictions(answer, target, len(body["instances"]))
    finally:
        if session is None:
            http.close()
    raise ServerUnavailableError(
        f"{target} is unreachable: {problem} (after {attempts} attempt{'s' * (attempts > 1)})"
    )


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
