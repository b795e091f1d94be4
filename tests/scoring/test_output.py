"""The batch-scoring output's commit, cut by a crash at every step (local and object store):
a reader always finds one job's complete output, never a manifest naming a missing part."""

from __future__ import annotations

from datetime import UTC, datetime

import pyarrow as pa
import pytest

from mnist_pipeline.scoring.output import (
    SCORES_SCHEMA,
    ScoresNotFoundError,
    check_output,
    commit,
    part_name,
    read_scores,
    write_part,
)
from tests.crash_points import every_crash, roots


def _rows(version: str, count: int) -> pa.Table:
    row = {
        "path": "x.png", "digit": 1, "probability": 0.9, "probabilities": [0.1] * 10,
        "mean_intensity": 0.1, "ink_fraction": 0.1, "bbox_height": 20.0, "bbox_width": 4.0,
        "label": None, "model_name": "m", "model_version": version,
        "scored_at": datetime(2026, 11, 30, tzinfo=UTC), "error": None,
    }  # fmt: skip
    return pa.Table.from_pylist([row] * count, schema=SCORES_SCHEMA)


def _job(folder: str, job: str, version: str, partitions: int) -> None:
    """What a batch-scoring job does: check the output, write its parts, commit."""
    started_over = check_output(folder)
    files = []
    for partition in range(partitions):
        name = part_name(job, partition)
        rows = write_part(folder, name, [_rows(version, 2)])
        files.append({"file": name, "rows": rows})
    commit(folder, {"job": job, "files": files}, replaces=started_over)


@pytest.mark.parametrize("kind", ["local", "object store"])
def test_a_job_cut_at_any_step_leaves_the_previous_output_or_its_own_whole(kind, tmp_path):
    def check(root: str, died: bool) -> None:
        versions = read_scores(f"{root}/scores").column("model_version").to_pylist()
        assert versions in (["1"] * 4, ["2"] * 6), versions  # one job's rows, all of them
        if not died:
            assert versions == ["2"] * 6
            _job(f"{root}/scores", "third", "3", 1)  # and the next job replaces it whole
            assert read_scores(f"{root}/scores").column("model_version").to_pylist() == ["3"] * 2

    steps = every_crash(
        roots(kind, tmp_path),
        lambda root: _job(f"{root}/scores", "first", "1", 2),
        lambda root: _job(f"{root}/scores", "second", "2", 3),
        check,
    )
    assert steps >= 5  # three parts, the manifest, the first job's two parts removed


def test_a_first_job_cut_at_any_step_leaves_no_output_that_looks_complete(tmp_path):
    def check(root: str, died: bool) -> None:
        if died:
            with pytest.raises(ScoresNotFoundError):
                read_scores(f"{root}/scores")
        else:
            assert read_scores(f"{root}/scores").num_rows == 4

    every_crash(
        roots("object store", tmp_path),
        lambda root: None,
        lambda root: _job(f"{root}/scores", "first", "1", 2),
        check,
    )
