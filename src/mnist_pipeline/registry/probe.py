"""Bounded retries and timeouts for the one cheap question that tells if a registry answers.

MLflow retries an HTTP request for minutes by default (7 retries, exponential backoff,
120 s timeout each): a deploy against an unreachable production registry took 255 s to
fail. Around a reachability probe (never around artifact transfers, which keep MLflow's
defaults) :func:`bounded` sets MLflow's own knobs to ``retries`` retries without backoff and a
``timeout_s`` timeout per attempt: at most ``(retries + 1) × timeout_s`` seconds
(2 × 8 s = 16 s by default) for a server that accepts and never answers, about a second for
a closed port.

Override with ``MNIST_REGISTRY_PROBE_TIMEOUT_S`` and ``MNIST_REGISTRY_PROBE_RETRIES``.
"""

from __future__ import annotations

import contextlib
import os
import threading
from collections.abc import Iterator

from mnist_pipeline.registry.config import RegistryConfigError

PROBE_TIMEOUT_S = 8
PROBE_RETRIES = 1
TIMEOUT_VARIABLE = "MNIST_REGISTRY_PROBE_TIMEOUT_S"
RETRIES_VARIABLE = "MNIST_REGISTRY_PROBE_RETRIES"
_LOCK = threading.Lock()


class ProbeSettingsError(RegistryConfigError):
    """A probe variable that is not a whole number in range (the message names it)."""


def settings() -> tuple[int, int]:
    """``(timeout_s, retries)`` of the probe, from the environment or the defaults.

    Raises:
        ProbeSettingsError: a variable that is not a whole number in range, naming it.
    """
    values = []
    knobs = ((TIMEOUT_VARIABLE, PROBE_TIMEOUT_S, 1), (RETRIES_VARIABLE, PROBE_RETRIES, 0))
    for name, default, low in knobs:
        raw = os.environ.get(name, "").strip()
        try:
            value = int(raw) if raw else default
        except ValueError:
            value = low - 1
        if value < low:
            raise ProbeSettingsError(f"{name}={raw!r}: expected a whole number ≥ {low}")
        values.append(value)
    return values[0], values[1]


@contextlib.contextmanager
def bounded() -> Iterator[tuple[int, int]]:
    """MLflow's HTTP requests in this block: few retries, no backoff, a short timeout.

    Yields ``(timeout_s, retries)``. MLflow reads these variables on every request, so they
    apply to the block only; the previous values come back afterwards.
    """
    timeout_s, retries = settings()
    names = {
        "MLFLOW_HTTP_REQUEST_MAX_RETRIES": str(retries),
        "MLFLOW_HTTP_REQUEST_TIMEOUT": str(timeout_s),
        "MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR": "0",
        "MLFLOW_HTTP_REQUEST_BACKOFF_JITTER": "0",
    }
    with _LOCK:
        before = {name: os.environ.get(name) for name in names}
        os.environ.update(names)
    try:
        yield timeout_s, retries
    finally:
        with _LOCK:
            for name, value in before.items():
                if value is None:
                    os.environ.pop(name, None)
                else:
                    os.environ[name] = value
