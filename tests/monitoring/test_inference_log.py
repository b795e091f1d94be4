"""The inference log on its own: records, request ids, pixel sampling, rotation, size bound,
drop-and-count when the sink is stuck, upload of closed segments to an object store."""

from __future__ import annotations

import json
import logging
import threading

import fsspec
import numpy as np
import pytest

from mnist_pipeline.parameters import ParametersError, check
from mnist_pipeline.parameters.operations import InferenceLog as InferenceLogParameters
from mnist_pipeline.serving.inference_log import (
    InferenceLog,
    InferenceLogSettings,
    open_inference_log,
)
from mnist_pipeline.serving.server import ServerSettings

INFO = {"name": "mnist_cnn", "version": "4"}


def _batch(count: int = 3):
    images = np.zeros((count, 28, 28, 1), np.float32)
    images[:, 6:22, 12:16] = 255.0
    probabilities = np.full((count, 10), 0.01, np.float32)
    probabilities[:, 1] = 0.91
    return images, probabilities


def _lines(folder) -> list[dict]:
    return [
        json.loads(line)
        for path in sorted(folder.glob("inference-*.jsonl"))
        for line in path.read_text().splitlines()
    ]


class _Response:
    def __init__(self):
        self.headers = {}


def test_every_image_is_a_record_with_its_request_id_and_summaries(tmp_path):
    log = InferenceLog(InferenceLogSettings(path=str(tmp_path / "log")), INFO)
    images, probabilities = _batch(3)
    response = _Response()
    log.log_request({"X-Request-ID": "req-1"}, images, probabilities, 0.0, response)
    log.log_request(
        {"X-Traffic-Source": "validation"}, images[:1], probabilities[:1], 0.0, _Response()
    )
    log.close()
    records = _lines(tmp_path / "log")
    assert response.headers["X-Request-ID"] == "req-1"
    assert len(records) == 4 and log.status()["records"] == 4
    first = records[0]
    assert first["request_id"] == "req-1" and first["source"] == "live"
    assert (first["model_name"], first["model_version"]) == ("mnist_cnn", "4")
    assert first["digit"] == 1 and first["probability"] == pytest.approx(0.91)
    assert first["latency_ms"] > 0 and first["batch_size"] == 3
    assert first["bbox_height"] == 16 and first["bbox_width"] == 4
    assert first["ink_fraction"] == pytest.approx(64 / 784)
    assert "pixels" not in first  # raw pixels are opt-in
    assert records[3]["source"] == "validation" and len(records[3]["request_id"]) == 32


def test_raw_pixels_are_logged_for_a_sampled_share(tmp_path):
    log = InferenceLog(InferenceLogSettings(path=str(tmp_path), pixels_sample_rate=0.5), INFO)
    images, probabilities = _batch(200)
    log.record(images, probabilities, 0.001, "r")
    log.close()
    with_pixels = [r for r in _lines(tmp_path) if "pixels" in r]
    assert 50 < len(with_pixels) < 150
    assert len(with_pixels[0]["pixels"]) == 784 and max(with_pixels[0]["pixels"]) == 255


def test_segments_rotate_and_the_oldest_go_beyond_the_size_bound(tmp_path):
    settings = InferenceLogSettings(path=str(tmp_path), max_segment_bytes=20_000, max_bytes=60_000)
    log = InferenceLog(settings, INFO)
    images, probabilities = _batch(20)
    for _ in range(60):
        log.record(images, probabilities, 0.001, "r")
        log.flush()
    log.close()
    status = log.status()
    segments = sorted(tmp_path.glob("inference-*.jsonl"))
    assert status["segments_closed"] >= 10 and status["segments_deleted"] >= 5
    assert sum(path.stat().st_size for path in segments) <= 60_000 + 20_000 * 1.5
    assert status["records"] == 1200 and status["dropped"] == 0


def test_the_size_bound_keeps_the_newest_records_and_counts_the_oldest_as_evicted(tmp_path):
    """What stays on disk is the newest requests, in order, up to the last one; every record
    deleted by the bound is counted, so received = on disk + lost."""
    settings = InferenceLogSettings(path=str(tmp_path), max_segment_bytes=10_000, max_bytes=30_000)
    log = InferenceLog(settings, INFO)
    images, probabilities = _batch(20)
    for index in range(30):
        log.record(images, probabilities, 0.001, f"req-{index:03d}")
        log.flush()
    log.close()
    kept = [record["request_id"] for record in _lines(tmp_path)]
    sent = [f"req-{index:03d}" for index in range(30) for _ in range(20)]
    status = log.status()
    assert status["segments_deleted"] >= 3 and 0 < len(kept) < len(sent)
    assert kept == sent[-len(kept) :]  # a suffix: the oldest went first, nothing newer
    assert status["evicted"] == status["lost"] == len(sent) - len(kept)
    assert status["received"] == len(sent)


def test_a_stuck_sink_never_blocks_the_caller_records_are_dropped_and_counted(tmp_path):
    log = InferenceLog(InferenceLogSettings(path=str(tmp_path), queue_size=2), INFO)
    release = threading.Event()
    original = log._write

    def stuck(batch):
        release.wait(30)
        original(batch)

    log._write = stuck
    images, probabilities = _batch(5)
    accepted = [log.record(images, probabilities, 0.001, f"r{i}") for i in range(10)]
    assert accepted.count(False) >= 7  # the writer holds one, the queue two
    assert log.status()["dropped"] == 5 * accepted.count(False)
    release.set()
    log.close()
    assert log.status()["records"] == 5 * accepted.count(True)


def test_closed_segments_are_uploaded_to_an_object_store(tmp_path):
    settings = InferenceLogSettings(
        path="memory://inference-test/log", spool_dir=str(tmp_path / "spool"),
        max_segment_bytes=10_000,
    )  # fmt: skip
    log = InferenceLog(settings, INFO)
    images, probabilities = _batch(20)
    for _ in range(5):
        log.record(images, probabilities, 0.001, "r")
        log.flush()
    log.close()
    fs = fsspec.filesystem("memory")
    uploaded = sorted(fs.ls("/inference-test/log", detail=False))
    assert len(uploaded) == log.status()["segments_uploaded"] >= 2
    lines = b"".join(fs.cat_file(path) for path in uploaded).splitlines()
    assert len(lines) == 100
    assert not list((tmp_path / "spool").glob("*.jsonl"))  # nothing left locally


def test_server_settings_turn_the_log_on_only_with_a_path(tmp_path):
    assert open_inference_log(ServerSettings().inference_log, INFO) is None
    settings = ServerSettings.model_validate(
        {"inference_log": {"path": str(tmp_path), "pixels_sample_rate": "0.1"}}
    )
    log = open_inference_log(settings.inference_log, INFO)
    assert log is not None and log.settings.pixels_sample_rate == 0.1
    log.close()
    assert f"--inference-log-path={tmp_path}" in settings.cli_args()  # reaches the server
    with pytest.raises(ParametersError, match=r"inference_log\.pixels_sample_rate = 2: input"):
        check(InferenceLogParameters, {"path": "x", "pixels_sample_rate": 2}, "inference_log")


@pytest.fixture
def small_disk(tmp_path):
    """A real 256 KiB filesystem (tmpfs), unmounted after the test. Needs root."""
    import os
    import subprocess

    if os.geteuid() != 0:
        pytest.skip("mounting a small tmpfs to fill needs root")
    disk = tmp_path / "disk"
    disk.mkdir()
    mounted = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=256k", "tmpfs", str(disk)],
        capture_output=True,
        text=True,
        check=False,
    )
    if mounted.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {mounted.stderr.strip()}")
    try:
        yield disk
    finally:  # a file still open (a failed test's log) makes it busy: detach it then
        if subprocess.run(["umount", str(disk)], check=False).returncode != 0:
            subprocess.run(["umount", "--lazy", str(disk)], check=True)


def _whole_lines(folder) -> int:
    """Lines on disk, each checked to be a whole JSON record (no cut line)."""
    count = 0
    for path in sorted(folder.glob("inference-*.jsonl")):
        data = path.read_bytes()
        assert not data or data.endswith(b"\n"), f"{path.name} ends with a cut line"
        for line in data.splitlines():
            assert json.loads(line)["model_version"] == "4"
            count += 1
    return count


def test_a_full_disk_loses_counted_records_and_the_log_resumes_on_its_own(small_disk, caplog):
    """Disk full, then space freed: every record is on disk or counted as lost, no line is
    cut, the log writes again by itself and says how many records it lost."""
    caplog.set_level(logging.WARNING, logger="mnist_pipeline.serving.inference_log")
    ballast = small_disk / "ballast"
    ballast.write_bytes(b"\0" * 160 * 1024)  # leaves the log about 96 KiB
    log = InferenceLog(InferenceLogSettings(path=str(small_disk / "log")), INFO)
    images, probabilities = _batch(20)
    sent = 0
    for index in range(100):  # ~7 KiB per request: the disk fills within ~15
        log.record(images, probabilities, 0.001, f"full-{index}")
        sent += 20
        log.flush(timeout_s=5)
        if log.status()["write_errors"] and index % 10 == 9:  # full, and a few more refused
            break
    full = log.status()
    assert full["write_lost"] > 0 and full["records"] > 0 and full["failing"] == ["write"]
    ballast.unlink()  # space again
    for index in range(5):
        log.record(images, probabilities, 0.001, f"after-{index}")
        sent += 20
        log.flush(timeout_s=5)
    log.close()
    status = log.status()
    assert status["records"] == full["records"] + 100  # it resumed on its own
    assert status["write_lost"] == full["write_lost"] and status["failing"] == []
    assert status["received"] == sent == _whole_lines(small_disk / "log") + status["lost"]
    warnings = [record.getMessage() for record in caplog.records]
    assert any("cannot write to" in message for message in warnings)
    [recovered] = [message for message in warnings if "again after" in message]
    assert f"{full['write_lost']} records were lost meanwhile" in recovered
    assert len(warnings) == 2  # one when it started, one when it ended: no warning per record
