"""Model input as Parquet shards that Spark/TensorFlow workers read by path: a split is a folder
of ``part-*.parquet`` files (``image`` fixed-size list<float32>, ``label`` uint8) and a
``_manifest.json`` written last (docs/data.md), so a folder without one is incomplete and
refused. Workers get the folder's path (a plain, picklable string) and read their share with
:func:`read_image_shards`.
"""

from __future__ import annotations

import hashlib
import logging
import posixpath
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
from kedro.io import AbstractDataset, DatasetError

from mnist_pipeline import storage
from mnist_pipeline.storage import MANIFEST, storage_errors

logger = logging.getLogger(__name__)

#: What to change when the shards' storage fails (named in errors).
SETTING = "the model input's path (catalog `{split}_model_input`, MNIST_STORAGE_ROOT)"
FORMAT_VERSION = 1


def _to_table(images: np.ndarray, labels: np.ndarray) -> pa.Table:
    flat = np.ascontiguousarray(images, dtype=np.float32).reshape(len(images), -1)
    image_column = pa.FixedSizeListArray.from_arrays(pa.array(flat.ravel()), flat.shape[1])
    return pa.table({"image": image_column, "label": pa.array(labels.astype(np.uint8))})


def content_sha256(images: np.ndarray, labels: np.ndarray) -> str:
    """SHA-256 of a split's contents (dtypes, shapes and bytes of images and labels)."""
    digest = hashlib.sha256()
    for key, array in (("images", images), ("labels", labels)):
        contiguous = np.ascontiguousarray(array)
        digest.update(f"{key}:{contiguous.dtype.str}:{contiguous.shape}".encode())
        digest.update(contiguous.tobytes())
    return digest.hexdigest()


def write_image_shards(
    path: str,
    images: np.ndarray,
    labels: np.ndarray,
    *,
    num_shards: int,
    storage_options: dict[str, Any] | None = None,
) -> list[str]:
    """Write ``images``/``labels`` as ``num_shards`` Parquet files plus a manifest.

    Local folders are replaced atomically (written beside, then swapped in);
    on object stores the manifest is written last.

    Returns:
        The shard file names, in order.
    """
    if len(images) != len(labels):
        raise DatasetError(f"{path}: {len(images)} images but {len(labels)} labels")
    images = np.ascontiguousarray(images, dtype=np.float32)
    labels = np.ascontiguousarray(labels, dtype=np.uint8)
    if num_shards < 1:
        raise DatasetError(f"{path}: num_shards must be ≥ 1, got {num_shards}")
    num_shards = min(num_shards, max(len(images), 1))
    fs, root = storage.filesystem(path, storage_options)
    local = storage.is_local(path)
    target = root  # the folder written: for a local one a temporary sibling, swapped in last
    if local:
        Path(root).parent.mkdir(parents=True, exist_ok=True)
        target = tempfile.mkdtemp(prefix=f".{Path(root).name}.", dir=Path(root).parent)
    else:
        fs.makedirs(root, exist_ok=True)
        # Objects cannot be swapped in as a folder: the old manifest goes first, so a
        # set cut short by a failure is never read as complete (its manifest comes last).
        storage.remove(storage.join(path, MANIFEST), storage_options)

    files = []
    try:
        for index, part in enumerate(np.array_split(np.arange(len(images)), num_shards)):
            name = f"part-{index:05d}.parquet"
            with fs.open(posixpath.join(target, name), "wb") as handle:
                pq.write_table(_to_table(images[part], labels[part]), handle)
            files.append(name)
        manifest = {
            "format_version": FORMAT_VERSION,
            "num_examples": len(images),
            "image_shape": list(images.shape[1:]),
            "sha256": content_sha256(images, labels),
            "label_counts": np.bincount(labels).tolist(),
            "files": files,
        }
        storage.commit_manifest(target if local else path, manifest, storage_options)
        if local:
            old = None
            if Path(root).exists():
                old = tempfile.mkdtemp(prefix=f".{Path(root).name}.old.", dir=Path(root).parent)
                Path(root).rename(Path(old) / "x")
            Path(target).chmod(0o755)  # mkdtemp makes 0700 folders; others must read it
            Path(target).rename(root)
            if old:
                shutil.rmtree(old, ignore_errors=True)
    except BaseException:
        if local:
            shutil.rmtree(target, ignore_errors=True)
        raise
    return files


def read_manifest(path: str, storage_options: dict[str, Any] | None = None) -> dict[str, Any]:
    """Read and check a split folder's manifest."""
    try:
        return storage.read_manifest(path, storage_options, format_version=FORMAT_VERSION)
    except storage.ManifestError as exc:
        raise DatasetError(f"model input {exc}; run the preprocessing pipeline") from None


def read_image_shards(
    path: str,
    shard_index: int = 0,
    num_shards: int = 1,
    storage_options: dict[str, Any] | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Read worker ``shard_index``'s share (of ``num_shards``) of a split folder.

    Files are dealt round-robin: worker ``i`` reads files ``i, i + n, …``. With
    ``num_shards=1`` the whole split is read.

    Returns:
        ``(images float32 (n, *image_shape), labels uint8 (n,))``.
    """
    if not 0 <= shard_index < num_shards:
        raise ValueError(f"shard_index {shard_index} is not in [0, {num_shards})")
    manifest = read_manifest(path, storage_options)
    files = manifest["files"][shard_index::num_shards]
    if not files:
        raise DatasetError(
            f"{path} has {len(manifest['files'])} shard files, fewer than the "
            f"{num_shards} workers reading it; write more shards (preprocessing.num_shards)"
        )
    fs, root = storage.filesystem(path, storage_options)
    shape = tuple(manifest["image_shape"])
    images, labels = [], []
    for name in files:
        with fs.open(posixpath.join(root, name), "rb") as handle:
            table = pq.read_table(handle)
        flat = table.column("image").combine_chunks().values.to_numpy(zero_copy_only=False)
        images.append(flat.reshape(-1, *shape))
        labels.append(table.column("label").to_numpy())
    return np.concatenate(images).astype(np.float32, copy=False), np.concatenate(labels)


@dataclass(frozen=True)
class ImageShards:
    """A handle on a split folder: its path, size and fingerprint; no arrays in memory.

    Nodes pass ``path`` to training workers, which read their share with
    :func:`read_image_shards`.
    """

    path: str
    num_examples: int
    image_shape: tuple[int, ...]
    files: tuple[str, ...]
    sha256: str
    label_counts: tuple[int, ...]
    storage_options: dict[str, Any] | None = None


class ImageShardsDataset(AbstractDataset[dict[str, np.ndarray], ImageShards]):
    """Saves ``{"images", "labels"}`` as Parquet shards; loads an :class:`ImageShards`.

    Example::

        train_model_input:
          type: mnist_pipeline.datasets.ImageShardsDataset
          path: data/05_model_input/train
          num_shards: 8
    """

    def __init__(
        self,
        *,
        path: str,
        num_shards: int = 8,
        credentials: dict[str, Any] | None = None,
        fs_args: dict[str, Any] | None = None,
        metadata: dict[str, Any] | None = None,
    ) -> None:
        self._path = str(path)
        self._num_shards = int(num_shards)
        self._storage_options = {**(fs_args or {}), **(credentials or {})} or None
        self.metadata = metadata

    def _describe(self) -> dict[str, Any]:
        return {"path": self._path, "num_shards": self._num_shards}

    def load(self) -> ImageShards:
        with storage_errors(self._path, SETTING, self._storage_options, "read"):
            manifest = read_manifest(self._path, self._storage_options)
        # Workers get an absolute path: their working directory is not the project's.
        path = storage.absolute(self._path)
        return ImageShards(
            path=path,
            num_examples=int(manifest["num_examples"]),
            image_shape=tuple(manifest["image_shape"]),
            files=tuple(manifest["files"]),
            sha256=manifest["sha256"],
            label_counts=tuple(manifest["label_counts"]),
            storage_options=self._storage_options,
        )

    def save(self, data: dict[str, np.ndarray]) -> None:
        with storage_errors(self._path, SETTING, self._storage_options, "write"):
            files = write_image_shards(
                self._path,
                np.asarray(data["images"]),
                np.asarray(data["labels"]),
                num_shards=self._num_shards,
                storage_options=self._storage_options,
            )
        logger.info(
            "Wrote %d examples in %d shards to %s", len(data["labels"]), len(files), self._path
        )

    def _exists(self) -> bool:
        with storage_errors(self._path, SETTING, self._storage_options, "read"):
            return storage.exists(storage.join(self._path, MANIFEST), self._storage_options)
