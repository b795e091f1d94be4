"""The inference log of a ``gs://`` path while its storage endpoint is stopped, then back.

A real fake-gcs-server of its own (the session's emulators stay up for the other tests) is
stopped and started again on the same port and folder. Uploads run beside the writer, so
no request waits and the writer keeps every record; the spool folder is bounded, and what
the bound deletes is counted and warned about: the records in the bucket plus those
reported lost are every record the server answered.
"""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
import time
import uuid

import fsspec
import numpy as np
import pytest

from mnist_pipeline.serving.inference_log import InferenceLog, InferenceLogSettings
from tools.cloud.emulators import Emulators

INFO = {"name": "mnist_cnn", "version": "4"}


GCS_ONLY = ("fake-gcs-server",)


@pytest.fixture
def own_emulators(tmp_path):
    """fake-gcs-server alone, on a free port of its own."""
    emulators = Emulators(tmp_path / "emulators", services=GCS_ONLY).start(timeout_s=120)
    try:
        yield emulators
    finally:
        emulators.stop()


def _until(condition, timeout_s: float = 60.0) -> None:
    """Wait for ``condition()`` (a readiness check, polled), failing after ``timeout_s``."""
    deadline = time.monotonic() + timeout_s
    while not condition():
        assert time.monotonic() < deadline, "condition not reached"
        time.sleep(0.05)


def test_a_storage_outage_loses_nothing_silently_and_uploads_resume(
    own_emulators, quick_gcs_retries, tmp_path, caplog
):
    caplog.set_level(logging.WARNING, logger="mnist_pipeline.serving.inference_log")
    options = {"endpoint_url": own_emulators.gcs_endpoint, "token": "anon"}
    url = f"gs://production/inference-{uuid.uuid4().hex[:8]}"
    settings = InferenceLogSettings(
        path=url, storage_options=options, spool_dir=str(tmp_path / "spool"),
        max_segment_bytes=16_000, max_bytes=100_000, queue_size=50,
    )  # fmt: skip
    log = InferenceLog(settings, INFO)
    images = np.zeros((20, 28, 28, 1), np.float32)
    images[:, 6:22, 12:16] = 255.0
    probabilities = np.full((20, 10), 0.01, np.float32)
    probabilities[:, 1] = 0.91
    log.record(images, probabilities, 0.001, "before")
    log.flush()

    own_emulators.stop()  # the endpoint goes away
    for index in range(40):  # ~260 KB of records: more than the spool's bound of 100 KB
        assert log.record(images, probabilities, 0.001, f"outage-{index}")  # never refused
        log.flush()
    _until(lambda: log.status()["upload_errors"] > 0)
    during = log.status()
    assert during["dropped"] == 0 and during["records"] == 41 * 20  # the writer kept up
    assert during["evicted"] > 0 and during["failing"] == ["upload", "keep"]

    restarted = Emulators(
        own_emulators.folder, own_emulators.azurite_port, own_emulators.gcs_port, services=GCS_ONLY
    )
    restarted.start(timeout_s=120)  # the same port and folder: the outage ends
    try:
        log.close(timeout_s=60)
        fs = fsspec.filesystem("gs", **options)
        in_bucket = [
            json.loads(line)
            for path in fs.ls(url.removeprefix("gs://"), detail=False, refresh=True)
            for line in fs.cat_file(path).splitlines()
        ]
    finally:
        restarted.stop()
    status = log.status()
    assert status["pending_upload"] == 0 and status["uploaded"] == len(in_bucket)
    assert status["received"] == 41 * 20 == len(in_bucket) + status["lost"]
    assert status["lost"] == status["evicted"] > 0
    assert not list((tmp_path / "spool").glob("*.jsonl"))
    warnings = [
        record.getMessage() for record in caplog.records if "inference log" in record.getMessage()
    ]
    assert any(f"cannot upload to {url}" in warning for warning in warnings)
    [evicting] = [warning for warning in warnings if "cannot keep every segment" in warning]
    assert "the spool folder is over its bound of 100,000 bytes: deleted inference-" in evicting
    assert sum(f"could upload to {url} again" in warning for warning in warnings) == 1
    [kept] = [warning for warning in warnings if "could keep every segment" in warning]
    assert f"{status['evicted']} records were lost meanwhile" in kept
    assert status["failing"] == []


def test_the_server_module_skips_gcsfs_grpc_bucket_probe_as_storage_does():
    """gcsfs waits 60 s on a gRPC probe unless this variable is set: `python -m
    mnist_pipeline.serving` (the server of a gs:// inference log) sets it as storage.py does."""
    env = {k: v for k, v in os.environ.items() if k != "GCSFS_EXPERIMENTAL_ZB_HNS_SUPPORT"}
    code = (
        "import os, mnist_pipeline.serving.__main__; "
        "print(os.environ.get('GCSFS_EXPERIMENTAL_ZB_HNS_SUPPORT'))"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True
    )
    assert result.stdout.strip() == "false"


def test_monitoring_a_log_whose_endpoint_is_down_fails_with_one_line(quick_gcs_retries, caplog):
    """No raw ClientConnectorError traceback: a StorageError naming the URL and the setting
    (the run prints it and a fix); gcsfs's own record of its last retry has no traceback."""
    from mnist_pipeline.errors import expected_failure
    from mnist_pipeline.monitoring.window import PredictionSource
    from mnist_pipeline.pipelines.monitoring.nodes import drift_report
    from mnist_pipeline.storage import StorageError
    from tools.cloud.emulators import free_port

    caplog.set_level(logging.DEBUG, logger="gcsfs")
    down = {"endpoint_url": f"http://127.0.0.1:{free_port()}", "token": "anon"}
    source = PredictionSource("inference_log", "gs://production/inference", down)
    reference = {"model": {"name": "mnist_cnn", "version": "3"}}
    params = {"source": "inference_log", "window": 1000, "thresholds": {}}
    with pytest.raises(StorageError) as caught:
        drift_report(source, None, reference, params)
    message = str(caught.value)
    assert message.startswith("could not read gs://production/inference: the storage endpoint")
    assert "MNIST_INFERENCE_LOG" in message and len(message.splitlines()) == 1
    assert expected_failure(caught.value) is not None
    gcsfs_records = [record for record in caplog.records if record.name == "gcsfs"]
    assert gcsfs_records and all(record.exc_info is None for record in gcsfs_records)
