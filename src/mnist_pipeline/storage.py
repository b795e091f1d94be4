"""Storage that training processes, datasets and outputs share: a local folder, ``abfs://``,
``gs://``, … via fsspec. Workers on a cluster see neither the driver's disk nor its environment,
so storage options travel with each call as arguments (:func:`resolve_options`: fsspec's
``FSSPEC_<PROTOCOL>`` variables, then explicit options; docs/cloud.md). Errors name the URL and
the setting, never a key. Sets of objects are complete once one small object written last (a
manifest) names them; local writes are atomic renames.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import posixpath
import shutil
import tempfile
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import fsspec
import fsspec.config
from fsspec.core import split_protocol, url_to_fs

from mnist_pipeline.redaction import first_line

# gcsfs first probes a bucket's type over gRPC and waits 60 s before falling back
# when that endpoint is not there (emulators); the probe only matters for
# hierarchical-namespace buckets, which this project does not use.
os.environ.setdefault("GCSFS_EXPERIMENTAL_ZB_HNS_SUPPORT", "false")


def _without_traceback(record: logging.LogRecord) -> bool:
    record.exc_info, record.exc_text = None, None
    return True


# gcsfs logs the last failure of its retries with a full traceback (``logger.exception``) and
# then raises it: the caller turns it into one clear error (:func:`storage_errors`), and
# gcsfs's own line stays, without the traceback that buried it.
logging.getLogger("gcsfs").addFilter(_without_traceback)


class StorageError(OSError):
    """Object storage could not be reached or used; the message names the URL and the setting."""


def protocol(url: str) -> str:
    """The URL's fsspec protocol (``file`` for plain paths)."""
    return split_protocol(str(url))[0] or "file"


def is_local(url: str) -> bool:
    """Whether ``url`` is a path on this machine's disk."""
    return protocol(url) in ("file", "local")


def join(url: str, *parts: str) -> str:
    """``url`` / parts, for paths and URLs alike."""
    if is_local(url):
        return str(Path(url, *parts))
    return posixpath.join(str(url).rstrip("/"), *parts)


def absolute(url: str) -> str:
    """An absolute path for local paths (workers run in another working directory)."""
    return str(Path(url).resolve()) if is_local(url) else str(url)


def resolve_options(url: str, options: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """The storage options that open ``url``: fsspec's configuration, then ``options``.

    Collected in the driver and passed on to training processes as arguments, because
    environment variables set in the driver do not reach executors on a cluster.
    """
    if is_local(url):
        return dict(options or {})
    name = protocol(url)
    aliases = {name}
    with contextlib.suppress(ValueError, ImportError):
        cls = fsspec.get_filesystem_class(name)
        aliases |= set(cls.protocol if isinstance(cls.protocol, (tuple, list)) else [cls.protocol])
    merged: dict[str, Any] = {}
    for alias in sorted(aliases):
        merged.update(fsspec.config.conf.get(alias, {}))
    merged.update(options or {})
    return merged


_UNREACHABLE = (
    "connection refused",
    "cannot connect",
    "connect call failed",
    "connectionerror",
    "connection reset",
    "connection aborted",
    "serverdisconnected",
    "remotedisconnected",
    "incompleteread",
    "timeout",
    "temporary failure in name resolution",
    "max retries exceeded",
)

_REFUSED = ("authenticationfailed", "authorizationfailure", "failed to authenticate", "signature")


def failure_reason(exc: BaseException) -> str:
    """What kind of failure ``exc`` is, in words a user can act on."""
    text = f"{type(exc).__name__}: {exc}"
    lowered = text.lower()
    # First: adlfs sometimes reports an endpoint it could not connect to as a
    # FileNotFoundError whose message holds the connection error.
    if any(word in lowered for word in _UNREACHABLE):
        return "the storage endpoint cannot be reached or dropped the connection"
    # Before not-found: adlfs also wraps a refused key in a FileNotFoundError.
    if any(word in lowered for word in _REFUSED):
        return "access denied: the credentials were refused"
    if isinstance(exc, FileNotFoundError) or any(
        word in lowered
        for word in ("containernotfound", "container does not exist", "nosuchbucket", "404")
    ):
        return "not found (a missing file, container or bucket)"
    if any(word in lowered for word in ("403", "401")):
        return "access denied: the credentials were refused"
    return "storage error"


@contextlib.contextmanager
def storage_errors(
    url: str, setting: str, options: Mapping[str, Any] | None = None, action: str = "access"
) -> Iterator[None]:
    """Turn any storage failure inside the block into a :class:`StorageError` naming the URL.

    ``setting`` is what the user changes to fix it (a parameter, a variable).
    """
    try:
        yield
    except (StorageError, ValueError, TypeError, LookupError):
        raise  # already clear, or not a storage failure
    except Exception as exc:
        if type(exc).__name__ == "DatasetError":
            raise
        detail = first_line(exc, options)
        raise StorageError(
            f"could not {action} {url}: {failure_reason(exc)} ({type(exc).__name__}: {detail}). "
            f"Check {setting} and the storage options/credentials for "
            f"{protocol(url)}:// (docs/cloud.md)"
        ) from None


def filesystem(url: str, options: Mapping[str, Any] | None = None):
    """``(fs, path)`` for ``url`` with ``options``."""
    return url_to_fs(str(url), **dict(options or {}))


@contextlib.contextmanager
def _replaced_atomically(path: str | os.PathLike[str]) -> Iterator[Any]:
    """A binary handle on a temporary file beside local ``path``, renamed over it when the
    block ends (atomic on POSIX): readers never see half a file, and if anything fails the
    temporary file is removed and ``path`` is left as it was."""
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".part", dir=target.parent)
    try:
        with os.fdopen(fd, "wb") as handle:
            yield handle
            handle.flush()
            os.fsync(handle.fileno())
        os.chmod(tmp, 0o644)  # mkstemp makes 0600 files; whoever reads the folder reads it
        os.replace(tmp, target)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def write_bytes(url: str, data: bytes, options: Mapping[str, Any] | None = None) -> None:
    """One file/object, whole or not at all: on local disk written beside and renamed over,
    on an object store one upload (it publishes the object only when the upload completes)."""
    fs, path = filesystem(url, options)
    if is_local(url):
        with _replaced_atomically(path) as handle:
            handle.write(data)
        return
    fs.makedirs(posixpath.dirname(path), exist_ok=True)
    fs.pipe_file(path, data)


def write_json(url: str, document: Any, options: Mapping[str, Any] | None = None) -> None:
    """``document`` as indented JSON at ``url``, whole or not at all (:func:`write_bytes`):
    how a manifest or a state file that names other files is committed, last."""
    write_bytes(url, json.dumps(document, indent=2).encode(), options)


def read_bytes(url: str, options: Mapping[str, Any] | None = None) -> bytes:
    fs, path = filesystem(url, options)
    with fs.open(path, "rb") as handle:
        return handle.read()


def read_json(url: str, options: Mapping[str, Any] | None = None) -> Any:
    """The JSON document at ``url``; ``None`` when there is none (e.g. a manifest not
    written yet: the caller says what that means)."""
    fs, path = filesystem(url, options)
    try:
        # One request for the whole object: a file handle reads up to the size it looked up
        # first, and an object replaced in between came back cut at the old size.
        return json.loads(fs.cat_file(path))
    except FileNotFoundError:
        return None


MANIFEST = "_manifest.json"


class ManifestError(LookupError):
    """A folder whose manifest is missing (never written, or the set was cut short) or is of
    another format; the message names the folder or the file."""


def commit_manifest(
    folder: str, manifest: Mapping[str, Any], options: Mapping[str, Any] | None = None
) -> None:
    """Write ``folder``'s manifest, the commit point of a set of files: written last, whole or
    not at all (:func:`write_json`), so a folder without one is incomplete."""
    write_json(join(folder, MANIFEST), dict(manifest), options)


def read_manifest(
    folder: str, options: Mapping[str, Any] | None = None, **expected: Any
) -> dict[str, Any]:
    """``folder``'s manifest, checked to hold ``expected`` (its format's name or version).

    Raises:
        ManifestError: there is none, or a key of ``expected`` has another value.
    """
    url = join(folder, MANIFEST)
    manifest = read_json(url, options)
    if not isinstance(manifest, dict):
        raise ManifestError(
            f"{folder} has no {MANIFEST}: it is missing or was not written completely"
        )
    for key, value in expected.items():
        if manifest.get(key) != value:
            raise ManifestError(
                f"{url}: {key.replace('_', ' ')} {manifest.get(key)}, expected {value}"
            )
    return manifest


def exists(url: str, options: Mapping[str, Any] | None = None) -> bool:
    fs, path = filesystem(url, options)
    return bool(fs.exists(path))


def upload(local_path: str | os.PathLike[str], url: str, options: Mapping[str, Any] | None = None):
    """Copy a local file to ``url``, whole or not at all (as :func:`write_bytes`)."""
    fs, path = filesystem(url, options)
    if is_local(url):
        with open(local_path, "rb") as source, _replaced_atomically(path) as handle:
            shutil.copyfileobj(source, handle)
        return
    fs.put_file(str(local_path), path)


def download(
    url: str, local_path: str | os.PathLike[str], options: Mapping[str, Any] | None = None
):
    """Copy ``url`` to a local file."""
    fs, path = filesystem(url, options)
    fs.get_file(path, str(local_path))


def listdir(url: str, options: Mapping[str, Any] | None = None) -> list[str]:
    """Base names directly under ``url`` (empty when it does not exist)."""
    fs, path = filesystem(url, options)
    try:
        entries = fs.ls(path, detail=False, refresh=True) if not is_local(url) else fs.ls(path)
    except FileNotFoundError:
        return []
    return sorted(posixpath.basename(str(entry).rstrip("/")) for entry in entries)


def remove(url: str, options: Mapping[str, Any] | None = None) -> None:
    """Delete one file/object; missing is fine."""
    fs, path = filesystem(url, options)
    with contextlib.suppress(FileNotFoundError):
        fs.rm_file(path)


def remove_tree(url: str, options: Mapping[str, Any] | None = None) -> None:
    """Delete a folder/prefix and everything under it; missing is fine."""
    if is_local(url):
        shutil.rmtree(url, ignore_errors=True)
        return
    fs, path = filesystem(url, options)
    with contextlib.suppress(FileNotFoundError):
        fs.rm(path, recursive=True)


@contextlib.contextmanager
def local_copy(url: str, options: Mapping[str, Any] | None = None) -> Iterator[str]:
    """A local path holding ``url``'s content for the block (the path itself when local)."""
    if is_local(url):
        yield str(url)
        return
    folder = tempfile.mkdtemp(prefix="mnist-download-")
    try:
        target = os.path.join(folder, posixpath.basename(str(url).rstrip("/")))
        download(url, target, options)
        yield target
    finally:
        shutil.rmtree(folder, ignore_errors=True)
