"""Smoke test of a serving endpoint: real MNIST test digits, sent as the seed sends them.

Each image goes as a raw 28×28 array of 0–255 integers in ``{"instances": [...]}``
through the project's client (:func:`mnist_pipeline.client.post_images`), one request per
image, and the answered digit must be the label. Reads the test split's IDX files (the
deploy pipeline has cached them under ``MNIST_CACHE_DIR``); needs only the client's
dependencies (numpy, requests), not TensorFlow.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from mnist_pipeline.client import post_images
from mnist_pipeline.client.http import DEFAULT_TOKEN_ENV
from mnist_pipeline.datasets.idx import parse_idx

IMAGES_FILE = "t10k-images-idx3-ubyte.gz"
LABELS_FILE = "t10k-labels-idx1-ubyte.gz"


class SmokeTestError(RuntimeError):
    """The endpoint answered, but not with the right digits."""


@dataclass(frozen=True)
class SmokeResult:
    url: str
    labels: list[int]
    digits: list[int]

    @property
    def correct(self) -> int:
        return sum(d == label for d, label in zip(self.digits, self.labels, strict=True))


def load_test_digits(folder: str | Path, count: int) -> tuple[np.ndarray, np.ndarray]:
    """The first ``count`` images (uint8, N×28×28) and labels of MNIST's test split."""
    folder = Path(folder)
    images = parse_idx(
        (folder / IMAGES_FILE).read_bytes(),
        str(folder / IMAGES_FILE),
        expected_magic=0x803,
        expected_shape=(None, 28, 28),
    )
    labels = parse_idx(
        (folder / LABELS_FILE).read_bytes(), str(folder / LABELS_FILE), expected_magic=0x801
    )
    if count < 1 or count > len(images):
        raise SmokeTestError(f"count must be 1..{len(images)}, got {count}")
    return images[:count], labels[:count]


def smoke_test(
    url: str,
    images: np.ndarray,
    labels: np.ndarray,
    *,
    token_env: str | None = DEFAULT_TOKEN_ENV,
    timeout_s: float = 30.0,
    retries: int = 5,
) -> SmokeResult:
    """Send each image alone as ``{"instances": [28×28]}``; every digit must match its label.

    Raises:
        SmokeTestError: a digit differs from its label (all answers are in the message).
        mnist_pipeline.client.ClientError: the endpoint could not answer.
    """
    digits = []
    for image in images:
        probabilities = post_images(
            url,
            np.asarray(image, dtype=np.uint8)[np.newaxis],
            token_env=token_env,
            timeout_s=timeout_s,
            retries=retries,
        )
        digits.append(int(np.argmax(probabilities[0])))
    result = SmokeResult(url=url, labels=[int(x) for x in labels], digits=digits)
    if result.correct != len(digits):
        raise SmokeTestError(
            f"{url} answered digits {result.digits} for test images labelled {result.labels}"
        )
    return result
