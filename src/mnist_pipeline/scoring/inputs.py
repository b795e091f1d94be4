"""What a batch-scoring job reads: image files or model-input shards, from any fsspec location.

The **driver** lists the inputs (:func:`list_inputs`): a folder or URI of image files
(every file under it, so that a stray non-image becomes an error row rather than being
skipped unseen), a glob, or a model-input split folder (``_manifest.json`` of
:mod:`mnist_pipeline.datasets.image_shards`). The **executors** read each item through
fsspec (:func:`read_item`): pip's pyspark has no Azure or GCS Hadoop connectors, and a
plain path list keeps the storage options out of Hadoop.

* Image files go through the client's MNIST convention
  (:func:`mnist_pipeline.client.image.load_mnist_image`): one implementation for the
  client, the batch job and anything else that scores photos.
* Model-input shards hold float32 in [0, 1]; the model takes 0–255 and its contract
  refuses images scaled to [0, 1], so they are rescaled (× 255) and *not* passed through
  the MNIST convention (they already are MNIST images).
"""

from __future__ import annotations

import os
import posixpath
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np

from mnist_pipeline import storage
from mnist_pipeline.client.image import ImageReadError, load_mnist_image
from mnist_pipeline.datasets.image_shards import read_image_shards, read_manifest
from mnist_pipeline.image_contract import MAX_PIXEL
from mnist_pipeline.storage import storage_errors

IMAGE = "image"
SHARD = "shard"
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg")
INPUT_SETTING = "batch_scoring.input.path (BATCH_SCORING_INPUT) and its storage_options"


class ScoringInputError(ValueError):
    """The input location is missing, empty or not readable."""


@dataclass(frozen=True)
class InputItem:
    """One unit of executor work: an image file, or one shard file of a split.

    Attributes:
        kind: ``"image"`` or ``"shard"``.
        uri: the file (images) or the split folder (shards), as fsspec reads it.
        shard_index / shard_count: which shard file of the split (shards only).
        file: that shard file's name (shards only).
    """

    kind: str
    uri: str
    shard_index: int = 0
    shard_count: int = 1
    file: str = ""


@dataclass(frozen=True)
class ScoredInput:
    """What :func:`read_item` yields per image: pixels (0–255, (28, 28)) or an error."""

    path: str
    pixels: np.ndarray | None
    label: int | None = None
    error: str | None = None


def _full_uri(fs: Any, path: str, original: str) -> str:
    if storage.is_local(original):
        return os.path.abspath(path)  # executors do not share the driver's working directory
    protocol = original.split("://", 1)[0] if "://" in original else ""
    return fs.unstrip_protocol(path) if not protocol else f"{protocol}://{path}"


def list_inputs(
    uri: str, storage_options: dict[str, Any] | None = None, kind: str = "auto"
) -> list[InputItem]:
    """The items to score under ``uri`` (driver side), in a stable order.

    Args:
        uri: a folder or URI prefix (``gs://bucket/digits``, ``data/inbox``), a glob
            (``abfs://c/inbox/*.png``) or a model-input split folder.
        storage_options: fsspec options (endpoints, anonymous access); secrets come
            from the cloud's default credentials or fsspec's environment variables.
        kind: ``"auto"`` (a folder with a shard manifest is shards, anything else
            images), ``"images"`` or ``"shards"``.

    Raises:
        ScoringInputError: nothing exists at ``uri`` or it holds no file.
        StorageError: the store cannot be reached or refuses the credentials (naming the
            setting; never a key).
    """
    if kind not in ("auto", "images", "shards"):
        raise ScoringInputError(
            f"batch_scoring.input.kind must be auto, images or shards, found {kind!r}"
        )
    options = storage_options or {}
    with storage_errors(uri, INPUT_SETTING, options, action="list the inputs at"):
        return _list_inputs(uri, options, kind)


def _list_inputs(uri: str, options: dict[str, Any], kind: str) -> list[InputItem]:
    fs, root = storage.filesystem(uri, options)
    is_glob = any(char in root for char in "*?[")
    has_manifest = not is_glob and fs.isfile(posixpath.join(root, storage.MANIFEST))
    if kind == "shards" or (kind == "auto" and has_manifest):
        try:
            manifest = read_manifest(uri, options)
        except Exception as exc:
            raise ScoringInputError(f"cannot read model-input shards at {uri}: {exc}") from exc
        folder = _full_uri(fs, root, uri)
        count = len(manifest["files"])
        return [
            InputItem(SHARD, folder, index, count, name)
            for index, name in enumerate(manifest["files"])
        ]
    if is_glob:
        paths = sorted(path for path in fs.glob(root) if fs.isfile(path))
    elif fs.isfile(root):
        paths = [root]
    elif fs.isdir(root):
        paths = sorted(fs.find(root))
    else:
        raise ScoringInputError(f"batch_scoring.input.path: nothing found at {uri}")
    paths = [path for path in paths if not posixpath.basename(path).startswith(".")]
    if not paths:
        raise ScoringInputError(f"batch_scoring.input.path: no files under {uri}")
    return [InputItem(IMAGE, _full_uri(fs, path, uri)) for path in paths]


def read_item(
    item: InputItem, storage_options: dict[str, Any] | None = None
) -> Iterator[ScoredInput]:
    """Read one item (executor side): every image it holds, or one error row.

    Never raises for bad input: an unreadable file, a non-image or an image with no
    digit yields a :class:`ScoredInput` with ``error`` set.
    """
    options = storage_options or {}
    if item.kind == SHARD:
        yield from _read_shard(item, options)
        return
    try:
        pixels = _read_image_file(item.uri, options)
    except ImageReadError as exc:
        yield ScoredInput(item.uri, None, error=str(exc))
    except Exception as exc:  # storage errors: permissions, vanished files
        yield ScoredInput(
            item.uri, None, error=f"cannot read {item.uri}: {type(exc).__name__}: {exc}"
        )
    else:
        yield ScoredInput(item.uri, pixels)


def _read_image_file(uri: str, options: dict[str, Any]) -> np.ndarray:
    with storage.local_copy(uri, options) as local:
        try:
            return load_mnist_image(local)
        except ImageReadError as exc:  # name the remote file, not the temporary copy
            raise ImageReadError(str(exc).replace(local, uri)) from exc


def _read_shard(item: InputItem, options: dict[str, Any]) -> Iterator[ScoredInput]:
    name = f"{item.uri.rstrip('/')}/{item.file or item.shard_index}"
    try:
        images, labels = read_image_shards(item.uri, item.shard_index, item.shard_count, options)
    except Exception as exc:
        yield ScoredInput(name, None, error=f"cannot read {name}: {type(exc).__name__}: {exc}")
        return
    pixels = np.clip(images.reshape(len(images), 28, 28) * MAX_PIXEL, 0.0, MAX_PIXEL)
    for row, (image, label) in enumerate(zip(pixels, labels, strict=True)):
        yield ScoredInput(f"{name}#{row}", image, label=int(label))
