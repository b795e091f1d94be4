"""Small I/O helpers shared by the project's datasets."""

from __future__ import annotations

import hashlib
import os
import tempfile
from pathlib import Path

import fsspec
from fsspec.core import url_to_fs


def sha256_hex(data: bytes) -> str:
    """The SHA-256 of ``data`` as lowercase hex."""
    return hashlib.sha256(data).hexdigest()


def atomic_write_bytes(path: str | os.PathLike[str], data: bytes) -> None:
    """Write ``data`` to a local ``path`` so that readers never see half a file.

    The bytes go to a temporary file in the same folder, which is then renamed
    over ``path`` (atomic on POSIX). If anything fails, the temporary file is
    removed and ``path`` is left as it was.
    """
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".part", dir=target.parent)
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, target)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def write_bytes(url: str, data: bytes, **storage_options: object) -> None:
    """Write ``data`` to any fsspec URL; atomically when the URL is local.

    Object stores (``abfs://``, ``gs://``, ``s3://``) publish an object only
    when its upload completes, so only local files need the rename dance.
    """
    fs, path = url_to_fs(url, **storage_options)
    if fs.protocol in ("file", "local") or "file" in tuple(fs.protocol):
        atomic_write_bytes(path, data)
        return
    fs.makedirs(fs._parent(path), exist_ok=True)
    with fs.open(path, "wb") as handle:
        handle.write(data)


def read_bytes(url: str, **storage_options: object) -> bytes:
    """Read a whole file from any fsspec URL (local path, https, abfs, gs, …)."""
    with fsspec.open(url, "rb", **storage_options) as handle:
        return handle.read()
