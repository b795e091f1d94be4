"""Which records monitoring reads: the newest ``size`` live records of the pinned version,
oldest first, from the inference log's segments or from a batch-scoring output."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import pyarrow as pa
import pytest

from mnist_pipeline.monitoring.window import PredictionSource, WindowError
from mnist_pipeline.scoring.output import SCORES_SCHEMA, commit, write_part

FEATURES = {"probability": 0.9, "mean_intensity": 0.1, "ink_fraction": 0.1,
            "bbox_height": 20.0, "bbox_width": 5.0}  # fmt: skip


def _segment(folder, hour: int, pid: int, records: list[dict], *, writing: bool = False) -> None:
    """One segment, named as the log names them (its start time sorts it)."""
    name = f"inference-20261130T{hour:02d}0000000000-{pid}-{hour + 1:04d}.jsonl"
    text = "".join(json.dumps({**FEATURES, "digit": 1, **r}) + "\n" for r in records)
    (folder / name).write_text(text + ('{"request_id": "half a li' if writing else ""))


def _records(first: int, count: int, **fields) -> list[dict]:
    return [{"request_id": f"r{i:03d}", **fields} for i in range(first, first + count)]


@pytest.fixture
def log(tmp_path):
    """Four segments, oldest to newest, of two servers (pids 7 and 8); each record's
    ``request_id`` is its place in time. Versions 3 and 2, live traffic and other sources."""
    folder = tmp_path / "log"
    folder.mkdir()
    _segment(folder, 0, 7, _records(0, 5, source="live", model_version="3"))
    _segment(
        folder, 1, 8,
        _records(5, 4, source="live", model_version="3")
        + _records(9, 3, source="validation", model_version="3")
        + _records(12, 2, source="smoke-test", model_version="3")
        + _records(14, 3, source="live", model_version="2"),
    )  # fmt: skip
    older = _records(17, 2, model_version="3")  # written before sources existed: live
    _segment(folder, 2, 7, older + _records(19, 3, source="live", model_version="3"))
    _segment(folder, 3, 8, _records(22, 2, source="live", model_version="2"), writing=True)
    return folder


LIVE_V3 = [f"r{i:03d}" for i in (*range(0, 9), 17, 18, 19, 20, 21)]  # in time order


@pytest.mark.parametrize("size", [1, 3, 6, 12, 14])
def test_the_window_is_the_newest_live_records_of_the_version_oldest_first(log, size):
    frame = PredictionSource("inference_log", str(log)).window(size, "3")
    assert frame["request_id"].tolist() == LIVE_V3[-size:]


def test_a_window_larger_than_the_log_holds_all_of_its_matching_records(log):
    frame = PredictionSource("inference_log", str(log)).window(100, "3")
    assert frame["request_id"].tolist() == LIVE_V3
    assert frame.attrs["skipped"] == 0  # the line being written is no malformed record
    other = PredictionSource("inference_log", str(log)).window(4, "2")
    assert other["request_id"].tolist() == ["r015", "r016", "r022", "r023"]


def test_a_log_without_records_of_the_version_is_no_window(log):
    with pytest.raises(WindowError, match="holds no live records of model version 9"):
        PredictionSource("inference_log", str(log)).window(10, "9")


def _scores(rows: list[tuple[str, str, str | None]]) -> pa.Table:
    return pa.Table.from_pylist(
        [
            {"path": path, "digit": None if error else 1, "probability": None if error else 0.9,
             "probabilities": None if error else [0.1] * 10,
             **({key: None for key in FEATURES if key != "probability"} if error else
                {key: value for key, value in FEATURES.items() if key != "probability"}),
             "label": None, "model_name": "m", "model_version": version,
             "scored_at": datetime(2026, 11, 30, tzinfo=UTC), "error": error}
            for path, version, error in rows
        ],
        schema=SCORES_SCHEMA,
    )  # fmt: skip


def test_the_batch_window_is_the_last_scored_rows_of_the_version(tmp_path):
    out = str(tmp_path / "scores")
    first = [(f"a{i}", "3", None) for i in range(4)] + [("bad.txt", "3", "not an image")]
    second = [("b0", "2", None), ("b1", "3", None), ("b2", "3", None), ("b3", "2", None)]
    files = []
    for index, rows in enumerate((first, second)):
        name = f"part-{index:05d}-job.parquet"
        files.append({"file": name, "rows": write_part(out, name, [_scores(rows)])})
    commit(out, {"job": "job", "files": files})
    source = PredictionSource("batch_scores", out)
    assert source.window(3, "3")["path"].tolist() == ["a3", "b1", "b2"]
    assert source.window(100, "3")["path"].tolist() == ["a0", "a1", "a2", "a3", "b1", "b2"]
    assert source.window(100, "2")["path"].tolist() == ["b0", "b3"]
    with pytest.raises(WindowError, match="holds no scored rows"):
        source.window(10, "9")
