"""What monitoring looks at: the last N records of the inference log or of a batch-scoring output.

Both are read through fsspec (local folders or object stores). Records of other model
versions and traffic that is not live (``source`` other than ``live``, e.g. deploy's
validation) are left out, so the window is compared with the reference of the version
that produced it.
"""

from __future__ import annotations

import json
import posixpath
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
from fsspec.core import url_to_fs

from mnist_pipeline.monitoring.drift import CLASS_FEATURE, CONTINUOUS_FEATURES
from mnist_pipeline.serving.inference_log import LIVE, SEGMENT_PREFIX, SEGMENT_SUFFIX

INFERENCE_LOG, BATCH_SCORES = "inference_log", "batch_scores"
COLUMNS = ("digit", "probability", "mean_intensity", "ink_fraction", "bbox_height", "bbox_width")


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
        if self.kind == INFERENCE_LOG:
            return read_log_window(self.path, size, model_version, self.storage_options)
        return read_scores_window(self.path, size, model_version, self.storage_options)


def read_log_window(
    path: str, size: int, model_version: str | None = None, options: dict[str, Any] | None = None
) -> pd.DataFrame:
    """Newest segments first until ``size`` matching records; a partial last line is skipped."""
    fs, root = url_to_fs(path, **(options or {}))
    if not fs.exists(root):
        raise WindowError(
            f"no inference log at {path}: nothing has been served with logging on yet "
            "(`kedro serve --env gcp` writes it; inference_log.path sets where)"
        )
    segments = sorted((p for p in fs.ls(root, detail=False) if _is_segment(p)), reverse=True)
    if not segments:
        raise WindowError(f"the inference log at {path} is empty (no {SEGMENT_PREFIX}* segments)")
    records: list[dict[str, Any]] = []
    for segment in segments:
        lines = fs.cat_file(segment).splitlines()
        chunk = []
        for line in lines:
            try:
                record = json.loads(line)
            except ValueError:  # a line being written
                continue
            if record.get("source", LIVE) != LIVE:
                continue
            if model_version is not None and str(record.get("model_version")) != model_version:
                continue
            chunk.append(record)
        records = chunk + records
        if len(records) >= size:
            break
    frame = pd.DataFrame.from_records(records[-size:] if records else [], columns=None)
    if frame.empty:
        raise WindowError(
            f"the inference log at {path} holds no live records"
            + (f" of model version {model_version}" if model_version else "")
        )
    return frame


def _is_segment(path: str) -> bool:
    name = posixpath.basename(path)
    return name.startswith(SEGMENT_PREFIX) and name.endswith(SEGMENT_SUFFIX)


def read_scores_window(
    path: str, size: int, model_version: str | None = None, options: dict[str, Any] | None = None
) -> pd.DataFrame:
    """The last ``size`` scored rows of a complete batch-scoring output."""
    from mnist_pipeline.scoring.output import ScoresNotFoundError, read_scores

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
