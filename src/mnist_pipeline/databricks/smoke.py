"""Smoke test of a serving endpoint: real MNIST test digits, sent as the seed sends them.

Each image goes alone as a raw 28×28 array of 0–255 integers, ``{"instances": [image]}``,
through the official client (``databricks-sdk``'s ``serving_endpoints.query``, with its
authentication chain and its retries of 429/503 answers while a scaled-to-zero endpoint
wakes up), and the answered digit must be the label. Reads the test split's IDX files (the
deploy pipeline has cached them under ``MNIST_CACHE_DIR``); needs no TensorFlow.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from mnist_pipeline.datasets.idx import parse_idx

if TYPE_CHECKING:
    from databricks.sdk import WorkspaceClient

IMAGES_FILE = "t10k-images-idx3-ubyte.gz"
LABELS_FILE = "t10k-labels-idx1-ubyte.gz"


class SmokeTestError(RuntimeError):
    """The endpoint could not answer, or answered the wrong digits (the message says which)."""


@dataclass(frozen=True)
class SmokeResult:
    endpoint: str
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


def _digit(predictions: object, endpoint: str) -> int:
    probabilities = np.asarray(predictions, dtype=np.float64)
    if probabilities.shape != (1, 10):
        raise SmokeTestError(
            f"serving endpoint {endpoint} answered predictions of shape {probabilities.shape}; "
            "expected (1, 10) for one image"
        )
    return int(np.argmax(probabilities[0]))


def smoke_test(
    client: WorkspaceClient, endpoint: str, images: np.ndarray, labels: np.ndarray
) -> SmokeResult:
    """Send each image alone as ``{"instances": [28×28]}``; every digit must match its label.

    Raises:
        SmokeTestError: the endpoint refused or could not answer, answered in another shape,
            or a digit differs from its label (all answers are in the message).
    """
    from databricks.sdk.errors import DatabricksError

    digits = []
    for image in images:
        pixels = np.asarray(image, dtype=np.uint8).astype(int).tolist()
        try:
            answer = client.serving_endpoints.query(name=endpoint, instances=[pixels])
        except (DatabricksError, ValueError) as exc:
            raise SmokeTestError(
                f"serving endpoint {endpoint} did not answer: {type(exc).__name__}: {exc}"
            ) from exc
        digits.append(_digit(answer.predictions, endpoint))
    result = SmokeResult(endpoint=endpoint, labels=[int(x) for x in labels], digits=digits)
    if result.correct != len(digits):
        raise SmokeTestError(
            f"serving endpoint {endpoint} answered digits {result.digits} for test images "
            f"labelled {result.labels}"
        )
    return result
