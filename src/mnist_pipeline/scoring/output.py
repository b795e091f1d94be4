"""Batch scores as Parquet through fsspec: per-partition files of one job, then a manifest written
last that makes the output complete; a job deletes only the files of the manifest it replaces (and
its own on failure), and a job whose output another job replaced meanwhile is refused
(:class:`ConcurrentOutputError`). Layout, guarantees: docs/operations.md, "Batch scoring on Spark".
"""

from __future__ import annotations

import contextlib
import posixpath
import re
from collections.abc import Iterable
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from mnist_pipeline import storage
from mnist_pipeline.image_summaries import SUMMARY_FEATURES
from mnist_pipeline.storage import MANIFEST, storage_errors

FORMAT = "mnist-batch-scores/1"
PART = re.compile(r"part-\d{5}-[^/]+\.parquet")  # part_name(); nothing else is ever deleted
OUTPUT_SETTING = "batch_scoring.output.path (BATCH_SCORING_OUTPUT) and its storage_options"
_NOW = object()  # commit(replaces=...) default: the output there now, unchecked

SCORES_SCHEMA = pa.schema(
    [
        pa.field("path", pa.string(), nullable=False),
        pa.field("digit", pa.int8()),
        pa.field("probability", pa.float32()),
        pa.field("probabilities", pa.list_(pa.float32())),  # ten, or null for an error row
        *[pa.field(name, pa.float32()) for name in SUMMARY_FEATURES],
        pa.field("label", pa.int8()),  # known labels (model-input shards), else null
        pa.field("model_name", pa.string(), nullable=False),
        pa.field("model_version", pa.string(), nullable=False),
        pa.field("scored_at", pa.timestamp("us", tz="UTC"), nullable=False),
        pa.field("error", pa.string()),
    ]
)


class ScoresNotFoundError(FileNotFoundError):
    """No complete batch-scoring output at a location (no manifest)."""


class ScoringOutputError(ValueError):
    """The output location cannot hold an output (a file, not a folder); names the setting."""


class ConcurrentOutputError(RuntimeError):
    """Another job committed to the same output while this one ran: this one is refused."""


def check_output(folder: str, storage_options: dict[str, Any] | None = None) -> dict | None:
    """Before a job: make sure ``folder`` can hold an output; the manifest there now (or None).

    Raises:
        ScoringOutputError: ``folder`` is a file.
        StorageError: it cannot be reached, read or created (a wrong key, a missing bucket),
            naming the setting.
    """
    with storage_errors(folder, OUTPUT_SETTING, storage_options, action="prepare the output"):
        fs, root = storage.filesystem(folder, storage_options)
        if fs.isfile(root):
            raise ScoringOutputError(
                f"batch_scoring.output.path: {folder} is a file; the output is a folder (or "
                "object prefix) of Parquet parts and a manifest: point it at a folder"
            )
        fs.makedirs(root, exist_ok=True)
        return current_manifest(folder, storage_options)


def current_manifest(folder: str, storage_options: dict[str, Any] | None = None) -> dict | None:
    """The manifest in ``folder`` now, or None."""
    manifest = storage.read_json(storage.join(folder, MANIFEST), storage_options)
    return manifest if isinstance(manifest, dict) else None


def part_name(job: str, partition: int) -> str:
    return f"part-{partition:05d}-{job}.parquet"


def write_part(
    folder: str,
    name: str,
    tables: Iterable[pa.Table],
    storage_options: dict[str, Any] | None = None,
) -> int:
    """Stream ``tables`` into ``folder/name`` (one Parquet file); the number of rows."""
    fs, root = storage.filesystem(folder, storage_options)
    fs.makedirs(root, exist_ok=True)
    rows = 0
    with (
        fs.open(posixpath.join(root, name), "wb") as handle,
        pq.ParquetWriter(handle, SCORES_SCHEMA, compression="zstd") as writer,
    ):
        for table in tables:
            writer.write_table(table)
            rows += table.num_rows
    return rows


def commit(
    folder: str,
    manifest: dict[str, Any],
    storage_options: dict[str, Any] | None = None,
    *,
    replaces: Any = _NOW,
) -> None:
    """Write the manifest (the commit point), then remove the files of the output it replaced.

    Args:
        replaces: the manifest the job found when it started (:func:`check_output`), None
            for none; the commit is refused when another job's is there now. Left out: the
            output there now, whichever it is.

    Raises:
        ConcurrentOutputError: another job committed to ``folder`` since this one started.
    """
    fs, root = storage.filesystem(folder, storage_options)
    now = current_manifest(folder, storage_options)
    if replaces is not _NOW and _job(now) != _job(replaces):
        raise ConcurrentOutputError(
            f"another batch-scoring job ({_job(now)}) committed to {folder} while job "
            f"{manifest.get('job', '?')} ran: refusing to replace its output (this job's parts "
            "are removed). Run one job per output at a time, or give each its own "
            "batch_scoring.output.path"
        )
    storage.commit_manifest(folder, {"format": FORMAT, **manifest}, storage_options)
    keep = {entry["file"] for entry in manifest["files"]}
    for entry in (now or {}).get("files", []):
        name = str(entry.get("file", ""))
        if PART.fullmatch(name) and name not in keep:
            with contextlib.suppress(FileNotFoundError):
                fs.rm(posixpath.join(root, name))


def _job(manifest: dict[str, Any] | None) -> str | None:
    return None if manifest is None else str(manifest.get("job", "an earlier job"))


def abort(folder: str, job: str, storage_options: dict[str, Any] | None = None) -> None:
    """Remove a failed job's parts (best effort: they are in no manifest anyway)."""
    try:
        fs, root = storage.filesystem(folder, storage_options)
        for path in fs.glob(posixpath.join(root, f"part-*-{job}.parquet")):
            fs.rm(path)
    except Exception:
        pass


def read_manifest(folder: str, storage_options: dict[str, Any] | None = None) -> dict[str, Any]:
    """The manifest of a complete output.

    Raises:
        ScoresNotFoundError: no manifest (never written, or the job failed).
    """
    try:
        return storage.read_manifest(folder, storage_options, format=FORMAT)
    except storage.ManifestError as exc:
        raise ScoresNotFoundError(
            f"no complete batch-scoring output: {exc}. Run `kedro run --env gcp --pipelines "
            "batch_scoring` first, or the last run failed"
        ) from None


def read_scores(folder: str, storage_options: dict[str, Any] | None = None) -> pa.Table:
    """Every row of a complete output (only the files its manifest lists)."""
    manifest = read_manifest(folder, storage_options)
    fs, root = storage.filesystem(folder, storage_options)
    tables = []
    for entry in manifest["files"]:
        with fs.open(posixpath.join(root, entry["file"]), "rb") as handle:
            tables.append(pq.read_table(handle, schema=SCORES_SCHEMA))
    return pa.concat_tables(tables) if tables else SCORES_SCHEMA.empty_table()
