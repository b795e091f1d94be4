"""Image file → MNIST convention → HTTP request → digit.

    from mnist_pipeline.client import predict_digits
    for result in predict_digits(["seven.png"], url="http://127.0.0.1:8501/v1/models/mnist_cnn:predict"):
        print(result.source, result.digit, result.probability)

Command line: ``python -m mnist_pipeline.client IMAGE... --url URL [--json]``.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import requests

from .http import (
    DEFAULT_TOKEN_ENV,
    ClientError,
    ServerRefusedError,
    ServerUnavailableError,
    post_images,
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

    def to_dict(self) -> dict[str, Any]:
        return {
            "image": self.source,
            "digit": self.digit,
            "probability": self.probability,
            "probabilities": self.probabilities,
        }


def predict_digits(
    images: Iterable[str | Path | Any],
    url: str,
    *,
    token_env: str | None = DEFAULT_TOKEN_ENV,
    timeout_s: float = 10.0,
    retries: int = 3,
    backoff_s: float = 0.5,
) -> list[DigitPrediction]:
    """Read each image, convert it to MNIST's convention, ask the server, return the digits.

    All images are read and converted before anything is sent, so an unreadable
    file fails fast (:class:`ImageReadError` naming it). See
    :func:`~mnist_pipeline.client.http.post_images` for the HTTP side and its errors.
    """
    sources = list(images)
    if not sources:
        raise ClientError("no images given")
    names = [str(s) if isinstance(s, str | Path) else f"image {i}" for i, s in enumerate(sources)]
    batch = np.stack([load_mnist_image(source) for source in sources])
    results: list[DigitPrediction] = []
    with requests.Session() as session:
        for start in range(0, len(batch), MAX_IMAGES_PER_REQUEST):
            probabilities = post_images(
                url,
                batch[start : start + MAX_IMAGES_PER_REQUEST],
                token_env=token_env,
                timeout_s=timeout_s,
                retries=retries,
                backoff_s=backoff_s,
                session=session,
            )
            for offset, row in enumerate(probabilities):
                digit = int(np.argmax(row))
                results.append(
                    DigitPrediction(
                        source=names[start + offset],
                        digit=digit,
                        probability=float(row[digit]),
                        probabilities=[float(p) for p in row],
                    )
                )
    return results


__all__ = [
    "ClientError",
    "DigitPrediction",
    "ImageReadError",
    "ServerRefusedError",
    "ServerUnavailableError",
    "load_mnist_image",
    "post_images",
    "predict_digits",
    "to_mnist",
]
