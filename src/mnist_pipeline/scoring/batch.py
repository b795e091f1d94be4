"""Score a stream of input items with the pyfunc: the work of one Spark partition, Spark-free.

:func:`score_partition` reads items (:mod:`.inputs`), batches the readable images,
calls the model's ``predict`` once per batch, and writes one Parquet part
(:mod:`.output`), returning that part's counts. The Spark job (:mod:`.spark`) runs it
on every partition; tests and small jobs can call it directly.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import numpy as np
import pyarrow as pa

from mnist_pipeline.image_contract import NUM_CLASSES
from mnist_pipeline.image_summaries import SUMMARY_FEATURES, image_summaries

from .inputs import InputItem, ScoredInput, read_item
from .output import SCORES_SCHEMA, write_part


@dataclass
class PartCounts:
    """What one part holds: rows, scored images, failed inputs, digits, labelled hits."""

    file: str
    rows: int = 0
    scored: int = 0
    failed: int = 0
    digits: list[int] = field(default_factory=lambda: [0] * NUM_CLASSES)
    labelled: int = 0
    correct: int = 0

    def add(self, table: pa.Table) -> None:
        digit = table.column("digit").to_numpy(zero_copy_only=False)
        label = table.column("label").to_numpy(zero_copy_only=False)
        ok = ~np.isnan(digit.astype(np.float64))
        self.rows += table.num_rows
        self.scored += int(ok.sum())
        self.failed += int((~ok).sum())
        counts = np.bincount(digit[ok].astype(np.int64), minlength=NUM_CLASSES)
        self.digits = [a + int(b) for a, b in zip(self.digits, counts, strict=True)]
        has_label = ok & ~np.isnan(label.astype(np.float64))
        self.labelled += int(has_label.sum())
        self.correct += int((digit[has_label] == label[has_label]).sum())

    def to_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


def score_records(
    records: list[ScoredInput], model: Any, model_name: str, model_version: str
) -> pa.Table:
    """One table of scores (see :data:`~.output.SCORES_SCHEMA`) for ``records``."""
    readable = [index for index, record in enumerate(records) if record.pixels is not None]
    count = len(records)
    probabilities = np.full((count, NUM_CLASSES), np.nan, dtype=np.float32)
    features = {name: np.full(count, np.nan, dtype=np.float32) for name in SUMMARY_FEATURES}
    errors = [record.error for record in records]
    if readable:
        images = np.stack([records[index].pixels for index in readable]).astype(np.float32)
        try:
            predicted = np.asarray(model.predict(images), dtype=np.float32)
        except Exception as exc:  # a batch the model refuses: every image in it is an error row
            for index in readable:
                errors[index] = f"the model refused the image: {type(exc).__name__}: {exc}"
        else:
            probabilities[readable] = predicted
            for name, values in image_summaries(images).items():
                features[name][readable] = values
    scored = ~np.isnan(probabilities).any(axis=1)
    digit = np.where(scored, np.nan_to_num(probabilities).argmax(axis=1), -1)
    top = np.where(scored, np.nan_to_num(probabilities).max(axis=1), np.nan)
    now = datetime.now(UTC)
    columns = {
        "path": pa.array([record.path for record in records], pa.string()),
        "digit": pa.array(digit, pa.int8(), mask=~scored),
        "probability": pa.array(top.astype(np.float32), pa.float32(), mask=~scored),
        "probabilities": pa.FixedSizeListArray.from_arrays(
            pa.array(np.nan_to_num(probabilities).ravel(), pa.float32()),
            NUM_CLASSES,
            mask=pa.array(~scored),  # unscored rows: a null list, not ten zeros
        ),
        **{name: pa.array(values, pa.float32(), mask=~scored) for name, values in features.items()},
        "label": pa.array(
            [record.label if record.label is not None else None for record in records], pa.int8()
        ),
        "model_name": pa.array([model_name] * count, pa.string()),
        "model_version": pa.array([model_version] * count, pa.string()),
        "scored_at": pa.array([now] * count, pa.timestamp("us", tz="UTC")),
        "error": pa.array(
            [
                None if ok else (error or "not scored")
                for ok, error in zip(scored, errors, strict=True)
            ],
            pa.string(),
        ),
    }
    return pa.table(columns).cast(SCORES_SCHEMA)


def _batches(
    items: Iterable[InputItem], batch_size: int, storage_options: dict[str, Any] | None
) -> Iterator[list[ScoredInput]]:
    batch: list[ScoredInput] = []
    for item in items:
        for record in read_item(item, storage_options):
            batch.append(record)
            if len(batch) >= batch_size:
                yield batch
                batch = []
    if batch:
        yield batch


def score_partition(
    items: Iterable[InputItem],
    model: Any,
    model_name: str,
    model_version: str,
    *,
    output: str,
    part: str,
    batch_size: int = 256,
    input_options: dict[str, Any] | None = None,
    output_options: dict[str, Any] | None = None,
) -> PartCounts:
    """Read, score and write ``items`` as the part file ``output/part``; its counts."""
    counts = PartCounts(file=part)

    def tables() -> Iterator[pa.Table]:
        for batch in _batches(items, max(1, int(batch_size)), input_options):
            table = score_records(batch, model, model_name, model_version)
            counts.add(table)
            yield table

    write_part(output, part, tables(), output_options)
    return counts
