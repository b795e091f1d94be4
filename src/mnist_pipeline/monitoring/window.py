"""What monitoring looks at: the last N records of the inference log or of a batch-scoring output.

Both are read through fsspec (local folders or object stores). Records of other model
versions and traffic that is not live (``source`` other than ``live``, e.g. deploy's
validation) are left out, so the window is compared with the reference of the version
that produced it.

A malformed line of the log (not JSON, not an object, a ``digit`` that is not 0–9, a feature
that is not a finite number) is skipped and counted (``frame.attrs["skipped"]``, and a
warning with the first one), never a crash; only the last line of a segment without its
newline (being written) is skipped uncounted. A store that cannot be reached or read is a
:class:`~mnist_pipeline.storage.StorageError` naming the location and the setting.
"""

from __future__ import annotations

import json
import logging
import math
import posixpath
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from mnist_pipeline import storage
from mnist_pipeline.monitoring.drift import CLASS_FEATURE, CONTINUOUS_FEATURES
from mnist_pipeline.scoring.output import ScoresNotFoundError, read_scores
from mnist_pipeline.serving.inference_log import LIVE, SEGMENT_PREFIX, SEGMENT_SUFFIX
from mnist_pipeline.storage import storage_errors

logger = logging.getLogger(__name__)

INFERENCE_LOG, BATCH_SCORES = "inference_log", "batch_scores"
COLUMNS = ("digit", "probability", "mean_intensity", "ink_fraction", "bbox_height", "bbox_width")
SETTINGS = {  # what the user changes when a source cannot be read
    INFERENCE_LOG: "the inference_log dataset's path (MNIST_INFERENCE_LOG, "
    "catalog_monitoring.yml) and its credentials",
    BATCH_SCORES: "the batch_scores dataset's path (BATCH_SCORING_OUTPUT, "
    "catalog_monitoring.yml) and its credentials",
}


class WindowError(ValueError):
    """No records to monitor: a missing or empty log, or no output of a batch job."""


@dataclass(frozen=True)
class PredictionSource:
    """A place holding predictions (loaded lazily: datasets return this, nodes read it)."""

    kind: str
    path: str
    storage_options: dict[str, Any] = field(default_factory=dict)

    def window(self, size: int, model_version: str | None = None) -> pd.DataFrame:
        """The last ``size`` live records (of ``model_version`` when given), oldest first."""
        with storage_errors(self.path, SETTINGS[self.kind], self.storage_options, "read"):
            if self.kind == INFERENCE_LOG:
                return read_log_window(self.path, size, model_version, self.storage_options)
            return read_scores_window(self.path, size, model_version, self.storage_options)


def read_log_window(
    path: str, size: int, model_version: str | None = None, options: dict[str, Any] | None = None
) -> pd.DataFrame:
    """Newest segments first until ``size`` matching records; malformed lines skipped and
    counted (``attrs["skipped"]``), a partial last line (being written) skipped."""
    fs, root = storage.filesystem(path, options)
    if not fs.exists(root):
        raise WindowError(
            f"no inference log at {path}: nothing has been served with logging on yet "
            "(`kedro serve --env gcp` writes it; inference_log.path sets where)"
        )
    segments = sorted((p for p in fs.ls(root, detail=False) if _is_segment(p)), reverse=True)
    if not segments:
        raise WindowError(f"the inference log at {path} is empty (no {SEGMENT_PREFIX}* segments)")
    records: list[dict[str, Any]] = []
    skipped, first_bad = 0, ""
    for segment in segments:
        data = fs.cat_file(segment)
        lines = data.splitlines()
        if lines and not data.endswith(b"\n"):
            lines.pop()  # a line being written
        chunk = []
        for line in lines:
            record = _record(line)
            if record is None:
                skipped += 1
                first_bad = first_bad or f"{posixpath.basename(segment)}: {line[:80]!r}"
                continue
            if record.get("source", LIVE) != LIVE:
                continue
            if model_version is not None and str(record.get("model_version")) != model_version:
                continue
            chunk.append(record)
        records = chunk + records
        if len(records) >= size:
            break
    if skipped:
        logger.warning(
            "Monitoring skipped %d malformed record(s) of the inference log at %s (first: %s)",
            skipped,
            path,
            first_bad,
        )
    frame = pd.DataFrame.from_records(records[-size:] if records else [], columns=None)
    if frame.empty:
        raise WindowError(
            f"the inference log at {path} holds no live records"
            + (f" of model version {model_version}" if model_version else "")
            + (f" ({skipped} malformed records skipped)" if skipped else "")
        )
    frame.attrs["skipped"] = skipped
    return frame


def _record(line: bytes) -> dict[str, Any] | None:
    """The record a log line holds, or None when it is not one the log writes."""
    try:
        record = json.loads(line)
    except ValueError:
        return None
    if not isinstance(record, dict):
        return None
    digit = record.get("digit")
    if not _number(digit) or digit != int(digit) or not 0 <= digit <= 9:
        return None
    if not all(_number(record.get(name)) for name in COLUMNS[1:]):
        return None
    return record


def _number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


def _is_segment(path: str) -> bool:
    name = posixpath.basename(path)
    return name.startswith(SEGMENT_PREFIX) and name.endswith(SEGMENT_SUFFIX)


def read_scores_window(
    path: str, size: int, model_version: str | None = None, options: dict[str, Any] | None = None
) -> pd.DataFrame:
    """The last ``size`` scored rows of a complete batch-scoring output."""
    try:
        table = read_scores(path, options)
    except ScoresNotFoundError as exc:
        raise WindowError(str(exc)) from exc
    frame = table.drop_columns(["probabilities"]).to_pandas()
    frame = frame[frame["error"].isna()]
    if model_version is not None:
        frame = frame[frame["model_version"] == model_version]
    if frame.empty:
        raise WindowError(f"the batch-scoring output at {path} holds no scored rows")
    return frame.tail(size).reset_index(drop=True)


def window_features(frame: pd.DataFrame) -> dict[str, np.ndarray]:
    """The monitored features of a window (see :mod:`.drift`)."""
    missing = [column for column in COLUMNS if column not in frame.columns]
    if missing:
        raise WindowError(
            f"the records lack the columns {missing}; were they written by this project?"
        )
    return {
        CLASS_FEATURE: frame["digit"].to_numpy(dtype=np.int64),
        **{name: frame[name].to_numpy(dtype=np.float64) for name in CONTINUOUS_FEATURES},
    }
