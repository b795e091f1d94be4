"""``MNISTIDXDataset``: one MNIST split (images + labels IDX files) from anywhere fsspec reads.

One catalog entry serves a local folder, an https mirror, ``abfs://`` (Azure) or
``gs://`` (GCP): only the paths change. Files are verified against their
SHA-256 and cached locally, so a second run reads the cache and downloads
nothing.
"""

from __future__ import annotations

import hashlib
import logging
import posixpath
from pathlib import Path
from typing import Any

import numpy as np
from kedro.io import AbstractDataset, DatasetError

from mnist_pipeline import storage
from mnist_pipeline.image_contract import NUM_CLASSES
from mnist_pipeline.redaction import first_line

from .idx import IDXFormatError, parse_idx

logger = logging.getLogger(__name__)

IMAGES_MAGIC = 0x00000803  # uint8, 3 dimensions
LABELS_MAGIC = 0x00000801  # uint8, 1 dimension


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


class ChecksumMismatchError(DatasetError):
    """A fetched file's SHA-256 is not the one configured for it."""


class MNISTIDXDataset(AbstractDataset[dict[str, np.ndarray], dict[str, np.ndarray]]):
    """An MNIST split: ``{"images": uint8 (N, H, W), "labels": uint8 (N,)}``.

    Example catalog entry (``conf/base/catalog.yml`` uses a factory for both
    splits)::

        mnist_train_raw:
          type: mnist_pipeline.datasets.MNISTIDXDataset
          images: https://mirror.example/mnist/train-images-idx3-ubyte.gz
          labels: https://mirror.example/mnist/train-labels-idx1-ubyte.gz
          checksums:
            train-images-idx3-ubyte.gz: 440fcabf…
            train-labels-idx1-ubyte.gz: 3552534a…
          cache_dir: data/01_raw/mnist

    On load it checks, and names the file in any error: the SHA-256 (when a
    checksum is configured for the file name), the gzip stream, the magic
    numbers, the image dimensions, the declared counts against the bytes
    present, that images and labels have the same count, and that labels are
    digits 0–9.
    """

    def __init__(
        self,
        *,
        images: str,
        labels: str,
        checksums: dict[str, str] | None = None,
        cache_dir: str | None = None,
        image_shape: tuple[int, int] | list[int] = (28, 28),
        credentials: dict[str, Any] | None = None,
        fs_args: dict[str, Any] | None = None,
        metadata: dict[str, Any] | None = None,
    ) -> None:
        """Create the dataset.

        Args:
            images: URL or path of the images IDX file (gzipped or not).
            labels: URL or path of the labels IDX file (gzipped or not).
            checksums: file name → expected SHA-256 hex of the file as stored
                (the ``.gz`` bytes for gzipped files). Files without an entry
                are not checked.
            cache_dir: local folder where verified files are kept; a file found
                there with the right checksum is used instead of fetching.
                ``None`` reads the source every time.
            image_shape: expected rows × columns of each image.
            credentials: fsspec storage options with secrets (e.g. an Azure
                account key); passed to fsspec, never logged.
            fs_args: other fsspec storage options.
            metadata: free-form metadata (kedro-viz shows it).
        """
        self._images = str(images)
        self._labels = str(labels)
        self._checksums = {k: str(v).lower() for k, v in (checksums or {}).items()}
        self._cache_dir = Path(cache_dir) if cache_dir else None
        self._image_shape = tuple(int(n) for n in image_shape)
        self._storage_options = {**(fs_args or {}), **(credentials or {})}
        self.metadata = metadata

    def _describe(self) -> dict[str, Any]:
        # Credentials are deliberately left out: _describe ends up in logs.
        return {
            "images": self._images,
            "labels": self._labels,
            "cache_dir": str(self._cache_dir) if self._cache_dir else None,
            "checksums": sorted(self._checksums),
        }

    def load(self) -> dict[str, np.ndarray]:
        """Fetch (or read from the cache), verify and parse both files."""
        images_name, labels_name = self._name(self._images), self._name(self._labels)
        images_bytes, labels_bytes = self._fetch(self._images), self._fetch(self._labels)
        try:
            images = parse_idx(
                images_bytes,
                images_name,
                expected_magic=IMAGES_MAGIC,
                expected_shape=(None, *self._image_shape),
            )
            labels = parse_idx(
                labels_bytes,
                labels_name,
                expected_magic=LABELS_MAGIC,
                expected_shape=(None,),
            )
        except IDXFormatError as exc:
            raise DatasetError(str(exc)) from exc
        if len(images) != len(labels):
            raise DatasetError(
                f"{images_name} holds {len(images):,} images but {labels_name} holds "
                f"{len(labels):,} labels; each image needs exactly one label"
            )
        if labels.size and int(labels.max()) >= NUM_CLASSES:
            bad = int(np.argmax(labels >= NUM_CLASSES))
            raise DatasetError(
                f"{labels_name}: label {int(labels[bad])} at index {bad} is not a digit 0–9"
            )
        # Cache only what passed every check, so a bad file never lands in the cache.
        self._cache(self._images, images_bytes)
        self._cache(self._labels, labels_bytes)
        return {"images": images, "labels": labels}

    def save(self, data: dict[str, np.ndarray]) -> None:
        """Read-only: the raw files are the source's, fetched and verified, never written."""
        raise DatasetError(
            f"{self._images}: MNIST raw files are read-only (fetched and verified against "
            "their SHA-256); nothing writes them"
        )

    def _exists(self) -> bool:
        try:
            return all(
                storage.exists(url, self._storage_options) for url in (self._images, self._labels)
            )
        except Exception:  # an unreachable source simply does not exist
            return False

    @staticmethod
    def _name(url: str) -> str:
        return posixpath.basename(url.rstrip("/")) or url

    def _fetch(self, url: str) -> bytes:
        """The checksum-verified bytes of ``url``, from the cache when it holds a good copy."""
        name = self._name(url)
        expected = self._checksums.get(name)
        cached = self._cache_dir / name if self._cache_dir else None
        if cached is not None and cached.is_file():
            data = cached.read_bytes()
            if expected is None or _sha256(data) == expected:
                logger.info("Using cached %s", cached)
                return data
            logger.warning("Cached %s does not match its checksum; fetching it again", cached)

        logger.info("Fetching %s", url)
        try:
            data = storage.read_bytes(url, self._storage_options)
        except Exception as exc:  # fsspec raises many types: network, auth, missing
            raise DatasetError(
                f"Could not read {url}: {type(exc).__name__}: "
                f"{first_line(exc, self._storage_options)} ({storage.failure_reason(exc)})."
                " Check the source "
                "(MNIST_SOURCE / globals.yml mnist.source), the network and credentials"
            ) from None
        if expected is not None:
            found = _sha256(data)
            if found != expected:
                raise ChecksumMismatchError(
                    f"{url}: SHA-256 mismatch, expected {expected}, found {found} "
                    f"({len(data):,} bytes); the file is corrupt or not the canonical MNIST file. "
                    "Nothing was cached."
                )
            logger.info("Verified SHA-256 of %s", name)
        return data

    def _cache(self, url: str, data: bytes) -> None:
        """Keep verified bytes in the cache (atomically), unless already there."""
        if self._cache_dir is None:
            return
        cached = self._cache_dir / self._name(url)
        if (
            cached.is_file()
            and cached.stat().st_size == len(data)
            and _sha256(cached.read_bytes()) == _sha256(data)
        ):
            return
        storage.write_bytes(str(cached), data)
