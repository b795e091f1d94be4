"""Batch scoring without Spark: listing inputs, reading them, scoring a partition, the
output protocol (parts + manifest written last). The model is a small fake here; the
Spark job with a real registered model is in tests/integration/test_batch_scoring.py."""

from __future__ import annotations

import json

import numpy as np
import pytest
from PIL import Image

from mnist_pipeline.datasets.image_shards import write_image_shards
from mnist_pipeline.image_summaries import image_summaries
from mnist_pipeline.scoring.batch import score_partition
from mnist_pipeline.scoring.inputs import ScoringInputError, list_inputs, read_item
from mnist_pipeline.scoring.output import (
    MANIFEST,
    ConcurrentOutputError,
    ScoresNotFoundError,
    abort,
    check_output,
    commit,
    read_scores,
)


class BrightnessModel:
    """Fake pyfunc: the digit is the image's mean brightness bucket; records what it saw."""

    def __init__(self):
        self.seen: list[np.ndarray] = []

    def predict(self, images):
        images = np.asarray(images, dtype=np.float32)
        assert images.ndim == 3 and images.shape[1:] == (28, 28) and images.max() <= 255
        self.seen.append(images)
        digit = np.clip((images.mean(axis=(1, 2)) / 10).astype(int), 0, 9)
        out = np.full((len(images), 10), 0.01, np.float32)
        out[np.arange(len(images)), digit] = 0.91
        return out


def _digit_png(path, dark_on_light=False):
    pixels = np.zeros((56, 56), np.uint8)
    pixels[10:46, 24:32] = 255  # a "1"
    if dark_on_light:
        pixels = 255 - pixels
    Image.fromarray(pixels).save(path)


@pytest.fixture
def image_folder(tmp_path):
    folder = tmp_path / "inbox"
    (folder / "sub").mkdir(parents=True)
    _digit_png(folder / "a.png")
    _digit_png(folder / "sub" / "b.jpg", dark_on_light=True)
    (folder / "notes.txt").write_text("not an image")
    (folder / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n garbage")
    (folder / ".hidden").write_text("skipped")
    return folder


def test_list_inputs_finds_every_file_under_a_folder_or_glob(image_folder):
    names = [item.uri.rsplit("/", 1)[1] for item in list_inputs(str(image_folder))]
    assert names == ["a.png", "broken.png", "notes.txt", "b.jpg"]
    assert {item.kind for item in list_inputs(str(image_folder))} == {"image"}
    globbed = list_inputs(f"{image_folder}/*.png")
    assert [item.uri.rsplit("/", 1)[1] for item in globbed] == ["a.png", "broken.png"]
    assert all(item.uri.startswith("/") for item in globbed)  # absolute for executors


def test_list_inputs_recognises_model_input_shards(tmp_path):
    images = np.random.default_rng(0).random((30, 28, 28)).astype(np.float32)
    write_image_shards(str(tmp_path / "test"), images, np.arange(30) % 10, num_shards=3)
    items = list_inputs(str(tmp_path / "test"))
    assert [(item.kind, item.shard_index, item.shard_count) for item in items] == [
        ("shard", 0, 3), ("shard", 1, 3), ("shard", 2, 3)
    ]  # fmt: skip
    # Shards are rescaled to 0–255 and keep their labels; not re-centred.
    records = list(read_item(items[1]))
    assert len(records) == 10 and records[0].path.endswith("part-00001.parquet#0")
    np.testing.assert_allclose(records[0].pixels, images[10] * 255, rtol=1e-6)
    assert records[0].label == 10 % 10


@pytest.mark.parametrize("where", ["missing", "empty", "kind"])
def test_list_inputs_names_the_bad_location(tmp_path, where):
    (tmp_path / "empty").mkdir()
    path = str(tmp_path / where) if where != "kind" else str(tmp_path / "empty")
    with pytest.raises(ScoringInputError, match="input" if where == "kind" else path):
        list_inputs(path, kind="videos" if where == "kind" else "auto")


def test_score_partition_writes_scores_and_error_rows(image_folder, tmp_path):
    model = BrightnessModel()
    out = tmp_path / "out"
    counts = score_partition(
        list_inputs(str(image_folder)), model, "mnist_cnn", "7",
        output=str(out), part="part-00000-job.parquet", batch_size=1,
    )  # fmt: skip
    assert (counts.rows, counts.scored, counts.failed) == (4, 2, 2)
    # Both digits went through the MNIST convention: white on black, same picture.
    np.testing.assert_allclose(model.seen[0][0], model.seen[1][0], atol=8)  # JPEG is lossy
    assert model.seen[0][0][14, 14] > 200 and model.seen[0][0][0, 0] == 0
    commit(str(out), {"files": [{"file": "part-00000-job.parquet", "rows": 4}]})
    rows = read_scores(str(out)).to_pylist()
    by_name = {row["path"].rsplit("/", 1)[1]: row for row in rows}
    assert by_name["a.png"]["error"] is None
    assert by_name["a.png"]["digit"] == by_name["b.jpg"]["digit"]
    assert len(by_name["a.png"]["probabilities"]) == 10
    assert by_name["a.png"]["probability"] == pytest.approx(0.91)
    assert by_name["a.png"]["model_version"] == "7" and by_name["a.png"]["scored_at"]
    assert 0 < by_name["a.png"]["ink_fraction"] < 1
    for bad in ("notes.txt", "broken.png"):
        assert bad in by_name[bad]["error"]
        assert by_name[bad]["digit"] is None and by_name[bad]["probabilities"] is None


def test_output_without_manifest_is_not_complete_and_a_failed_job_keeps_the_last_one(tmp_path):
    out = str(tmp_path / "out")
    model = BrightnessModel()
    image = tmp_path / "one.png"
    _digit_png(image)
    with pytest.raises(ScoresNotFoundError, match="no complete batch-scoring output"):
        read_scores(out)
    score_partition(
        list_inputs(str(image)), model, "m", "1", output=out, part="part-00000-a.parquet"
    )
    with pytest.raises(ScoresNotFoundError):  # parts alone are not an output
        read_scores(out)
    commit(out, {"files": [{"file": "part-00000-a.parquet", "rows": 1}]})
    # A second job writes its parts, then fails: its parts go, the first output stays whole.
    score_partition(
        list_inputs(str(image)), model, "m", "2", output=out, part="part-00000-b.parquet"
    )
    abort(out, "b")
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == [
        MANIFEST,
        "part-00000-a.parquet",
    ]
    assert read_scores(out).column("model_version").to_pylist() == ["1"]
    # A job that commits replaces the output and removes the files of the one it replaced.
    score_partition(
        list_inputs(str(image)), model, "m", "3", output=out, part="part-00000-c.parquet"
    )
    commit(out, {"files": [{"file": "part-00000-c.parquet", "rows": 1}]})
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == [
        MANIFEST,
        "part-00000-c.parquet",
    ]
    assert json.loads((tmp_path / "out" / MANIFEST).read_text())["files"][0]["rows"] == 1


def test_image_summaries():
    image = np.zeros((28, 28), np.uint8)
    image[4:24, 10:15] = 255
    summary = {name: float(values[0]) for name, values in image_summaries(image).items()}
    assert summary == {
        "mean_intensity": pytest.approx(100 * 255 / 784 / 255),
        "ink_fraction": pytest.approx(100 / 784),
        "bbox_height": 20.0,
        "bbox_width": 5.0,
    }
    empty = image_summaries(np.zeros((2, 28, 28, 1)))
    assert empty["bbox_height"].tolist() == [0.0, 0.0]


def _job(out: str, image, job: str, version: str) -> dict:
    """One job's parts written (not committed); its manifest."""
    part = f"part-00000-{job}.parquet"
    score_partition(list_inputs(str(image)), BrightnessModel(), "m", version, output=out, part=part)
    return {"job": job, "files": [{"file": part, "rows": 1}]}


def test_a_job_deletes_only_files_it_wrote_never_other_files_in_the_output(tmp_path):
    """The output folder already held files of someone else: they stay, through two jobs."""
    out = tmp_path / "out"
    out.mkdir()
    (out / "part-0000.csv").write_text("someone's data")
    (out / "part-of-report.md").write_text("someone's report")
    (out / "part-00003-leftover.txt").write_text("not a part of ours either")
    image = tmp_path / "one.png"
    _digit_png(image)
    for job in ("first", "second"):
        started_over = check_output(str(out))
        commit(str(out), _job(str(out), image, job, job), replaces=started_over)
    assert sorted(p.name for p in out.iterdir()) == [
        MANIFEST,
        "part-0000.csv",
        "part-00000-second.parquet",  # the first job's part went with its manifest
        "part-00003-leftover.txt",
        "part-of-report.md",
    ]
    assert read_scores(str(out)).column("model_version").to_pylist() == ["second"]


def test_of_two_jobs_into_one_output_the_one_overtaken_is_refused_and_the_output_stays_whole(
    tmp_path,
):
    out = str(tmp_path / "out")
    image = tmp_path / "one.png"
    _digit_png(image)
    commit(out, _job(out, image, "earlier", "0"), replaces=check_output(out))
    # Two jobs start over the same output; "fast" commits first, "slow" after it.
    fast_started, slow_started = check_output(out), check_output(out)
    fast, slow = _job(out, image, "fast", "1"), _job(out, image, "slow", "2")
    commit(out, fast, replaces=fast_started)
    with pytest.raises(ConcurrentOutputError, match=r"another batch-scoring job \(fast\)"):
        commit(out, slow, replaces=slow_started)
    abort(out, "slow")  # what the job does on any failure
    manifest = json.loads((tmp_path / "out" / MANIFEST).read_text())
    assert manifest["job"] == "fast"
    listed = {entry["file"] for entry in manifest["files"]}
    on_disk = {p.name for p in (tmp_path / "out").iterdir()} - {MANIFEST}
    assert listed == on_disk == {"part-00000-fast.parquet"}  # every listed file exists
    assert read_scores(out).column("model_version").to_pylist() == ["1"]


def test_an_output_path_that_is_a_file_is_refused_naming_the_setting(tmp_path):
    from mnist_pipeline.errors import expected_failure
    from mnist_pipeline.scoring.output import ScoringOutputError

    target = tmp_path / "scores.parquet"
    target.write_bytes(b"a file")
    with pytest.raises(ScoringOutputError, match=r"batch_scoring.output.path: .* is a file") as e:
        check_output(str(target))
    assert expected_failure(e.value) is not None  # one line and a fix, no traceback


@pytest.mark.parametrize("where", ["missing", "empty"])
def test_a_missing_or_empty_input_ends_with_one_line_naming_the_setting(tmp_path, where):
    """Before Spark starts (the node lists the inputs first), and recognised as an expected
    failure: `kedro run` prints the line and a fix, no traceback."""
    from mnist_pipeline.errors import expected_failure
    from mnist_pipeline.pipelines.batch_scoring.nodes import score_batch

    (tmp_path / "empty").mkdir()
    scoring = {
        "input": {"path": str(tmp_path / where)},
        "output": {"path": str(tmp_path / "out")},
    }
    with pytest.raises(ScoringInputError, match=r"batch_scoring.input.path: ") as caught:
        score_batch({}, {"registry_uri": "unused"}, scoring)
    failure = expected_failure(caught.value)
    assert failure is not None and "BATCH_SCORING_INPUT" in failure.fix
