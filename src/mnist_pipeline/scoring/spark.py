"""The batch-scoring job on Spark: the one module that knows Spark's API for it. The driver spreads
the items' paths (never pixels) over partitions; one ``mapInPandas`` stage runs
:func:`~.batch.score_partition` in the executors (read, convert, predict with the shipped pyfunc,
write a Parquet part) and only counts come back for the manifest (:func:`~.output.commit`). Why
``mapInPandas`` and not ``mlflow.pyfunc.spark_udf``: docs/operations.md.
"""

from __future__ import annotations

import math
import tempfile
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from mnist_pipeline import storage
from mnist_pipeline.image_contract import NUM_CLASSES
from mnist_pipeline.registry.store import download_model

from .batch import PartCounts, score_partition
from .inputs import InputItem
from .model import PinnedModel, archive_model, load_shipped_model
from .output import abort, check_output, commit, part_name

ITEM_SCHEMA = "kind string, uri string, shard_index int, shard_count int, file string"
COUNTS_SCHEMA = (
    "file string, rows long, scored long, failed long, digits array<long>, "
    "labelled long, correct long"
)


def active_spark():
    """The running SparkSession (started by the project's hook), from any thread."""
    from pyspark.sql import SparkSession

    spark = SparkSession.getActiveSession()
    if spark is None:
        spark = SparkSession.builder.getOrCreate()
    return spark


def num_partitions(spark: Any, items: list[InputItem], images_per_partition: int) -> int:
    """Enough partitions to use every core, few enough to load the model rarely."""
    shards = [item for item in items if item.kind == "shard"]
    if shards:
        return len(shards)
    wanted = math.ceil(len(items) / max(1, int(images_per_partition)))
    return max(1, min(len(items), max(wanted, spark.sparkContext.defaultParallelism)))


def ship_model(spark: Any, pinned: PinnedModel, registry_uri: str | None) -> str:
    """Download the pinned version and add it to the job's files; the archive's name.

    Archives are kept in one driver folder under a content-hashed name: Spark refuses
    the same file name from two paths in one session (a second job with the same model).
    """
    cache = Path(tempfile.gettempdir()) / "mnist-batch-models"
    cache.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="download-", dir=cache) as tmp:
        model_dir = download_model(pinned.model_uri, Path(tmp) / "model", registry_uri)
        staged = archive_model(model_dir, Path(tmp), f"{pinned.name}-{pinned.version}")
        archive = cache / staged.name
        if not archive.is_file():
            staged.replace(archive)
    spark.sparkContext.addFile(str(archive))
    return archive.name


def run_scoring_job(
    spark: Any,
    items: list[InputItem],
    pinned: PinnedModel,
    registry_uri: str | None,
    *,
    output: str,
    batch_size: int = 256,
    images_per_partition: int = 20000,
    input_options: dict[str, Any] | None = None,
    output_options: dict[str, Any] | None = None,
    source: str = "",
) -> dict[str, Any]:
    """Score ``items`` on the cluster, write the parts, commit the manifest; the manifest.

    On any failure the job's parts are removed and the error is raised: the output
    folder then holds the previous complete result (if any) and nothing that looks
    complete from this job. A job that another job's commit overtook is refused
    (:class:`~.output.ConcurrentOutputError`).
    """
    output = storage.absolute(output)
    job = f"{datetime.now(UTC):%Y%m%dT%H%M%S}-{uuid.uuid4().hex[:8]}"
    started = datetime.now(UTC)
    partitions = num_partitions(spark, items, images_per_partition)
    name, version = pinned.name, pinned.version
    size = int(batch_size)
    in_options, out_options = dict(input_options or {}), dict(output_options or {})

    previous = check_output(output, out_options)  # the output this job will replace
    archive = ship_model(spark, pinned, registry_uri)

    def score(frames: Iterator[Any]) -> Iterator[Any]:
        import pandas as pd
        from pyspark import TaskContext

        model = load_shipped_model(archive)
        part = part_name(job, TaskContext.get().partitionId())

        def partition_items() -> Iterator[InputItem]:
            for frame in frames:
                for row in frame.itertuples(index=False):
                    yield InputItem(
                        row.kind, row.uri, int(row.shard_index), int(row.shard_count), row.file
                    )

        counts = score_partition(
            partition_items(), model, name, version,
            output=output, part=part, batch_size=size,
            input_options=in_options, output_options=out_options,
        )  # fmt: skip
        yield pd.DataFrame([counts.to_dict()])

    rows = [(i.kind, i.uri, i.shard_index, i.shard_count, i.file) for i in items]
    frame = spark.createDataFrame(
        spark.sparkContext.parallelize(rows, partitions), schema=ITEM_SCHEMA
    )
    try:
        parts = [row.asDict() for row in frame.mapInPandas(score, COUNTS_SCHEMA).collect()]
        manifest = build_manifest(parts, pinned, source, output, job, started, partitions)
        commit(output, manifest, out_options, replaces=previous)
    except BaseException:
        abort(output, job, out_options)
        raise
    return manifest


def build_manifest(  # noqa: PLR0917 - one call site, all named
    parts: list[dict[str, Any]],
    pinned: PinnedModel,
    source: str,
    output: str,
    job: str,
    started: datetime,
    partitions: int,
) -> dict[str, Any]:
    """The manifest: files with their counts, totals, model, timing."""
    parts = sorted(parts, key=lambda part: part["file"])
    totals = PartCounts(file="")
    for part in parts:
        totals.rows += part["rows"]
        totals.scored += part["scored"]
        totals.failed += part["failed"]
        totals.labelled += part["labelled"]
        totals.correct += part["correct"]
        totals.digits = [a + int(b) for a, b in zip(totals.digits, part["digits"], strict=True)]
    finished = datetime.now(UTC)
    seconds = (finished - started).total_seconds()
    summary = {
        "rows": totals.rows,
        "scored": totals.scored,
        "failed": totals.failed,
        "per_digit": {str(digit): totals.digits[digit] for digit in range(NUM_CLASSES)},
    }
    if totals.labelled:
        summary["labelled"] = totals.labelled
        summary["accuracy"] = totals.correct / totals.labelled
    return {
        "job": job,
        "source": source,
        "output": output,
        "model": pinned.to_dict(),
        "started_at": started.isoformat(),
        "finished_at": finished.isoformat(),
        "duration_s": round(seconds, 3),
        "images_per_s": round(totals.rows / seconds, 1) if seconds > 0 else None,
        "partitions": partitions,
        "summary": summary,
        "files": [{"file": part["file"], "rows": part["rows"]} for part in parts],
    }
