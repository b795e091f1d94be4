"""Image file → MNIST convention → HTTP request → digit.

    from mnist_pipeline.client import predict_digits
    for result in predict_digits(["seven.png"], url="http://127.0.0.1:8501/v1/models/mnist_cnn:predict"):
        print(result.source, result.digit, result.probability)

Several endpoints fail over (``url=[primary, secondary]``, see :mod:`.http`); each result
names the endpoint that answered. Command line: ``python -m mnist_pipeline.client IMAGE...
--url URL [--url URL2] [--json]``.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from .http import (
    DEFAULT_TOKEN_ENV,
    ClientError,
    Endpoint,
    ServerRefusedError,
    ServerUnavailableError,
    as_endpoints,
    deadline_session,
    endpoint_url,
    post_images,
    request_predictions,
)
from .image import ImageReadError, load_mnist_image, to_mnist

MAX_IMAGES_PER_REQUEST = 64


@dataclass(frozen=True)
class DigitPrediction:
    """The served answer for one image."""

    source: str
    digit: int
    probability: float
    probabilities: list[float]
    endpoint: str = ""  # the URL that answered

    def to_dict(self) -> dict[str, Any]:
        return {
            "image": self.source,
            "digit": self.digit,
            "probability": self.probability,
            "probabilities": self.probabilities,
            "endpoint": self.endpoint,
        }


def predict_digits(
    images: Iterable[str | Path | Any],
    url: str | Endpoint | Sequence[str | Endpoint],
    *,
    token_env: str | None = DEFAULT_TOKEN_ENV,
    failures: list[str] | None = None,
    **options: Any,
) -> list[DigitPrediction]:
    """Read each image, convert it to MNIST's convention, ask the server, return the digits.

    All images are read and converted before anything is sent, so an unreadable
    file fails fast (:class:`ImageReadError` naming it). Images go in requests of
    at most ``MAX_IMAGES_PER_REQUEST``; with several endpoints, each request tries
    them in order, starting with the one that answered the previous request, within
    ``deadline_s`` per request. ``options`` (``timeout_s``, ``retries``, ``backoff_s``,
    ``deadline_s``, ``request_format``) and the errors are those of
    :func:`~mnist_pipeline.client.http.request_predictions`. ``failures`` (a list) collects
    the attempts that failed over.
    """
    sources = list(images)
    if not sources:
        raise ClientError("no images given")
    names = [str(s) if isinstance(s, str | Path) else f"image {i}" for i, s in enumerate(sources)]
    batch = np.stack([load_mnist_image(source) for source in sources])
    endpoints = as_endpoints(url, token_env)
    results: list[DigitPrediction] = []
    with deadline_session() as session:
        for start in range(0, len(batch), MAX_IMAGES_PER_REQUEST):
            chunk = batch[start : start + MAX_IMAGES_PER_REQUEST]
            answer = request_predictions(endpoints, chunk, session=session, **options)
            if failures is not None:
                failures.extend(answer.failures)
            # the endpoint that answered goes first next time (the others keep their order)
            first = next(e for e in endpoints if endpoint_url(e.url) == answer.endpoint)
            endpoints = [first, *(e for e in endpoints if e is not first)]
            for offset, row in enumerate(answer.probabilities):
                digit = int(np.argmax(row))
                results.append(
                    DigitPrediction(
                        source=names[start + offset],
                        digit=digit,
                        probability=float(row[digit]),
                        probabilities=[float(p) for p in row],
                        endpoint=answer.endpoint,
                    )
                )
    return results


__all__ = [
    "ClientError",
    "DigitPrediction",
    "Endpoint",
    "ImageReadError",
    "ServerRefusedError",
    "ServerUnavailableError",
    "load_mnist_image",
    "post_images",
    "predict_digits",
    "request_predictions",
    "to_mnist",
]
