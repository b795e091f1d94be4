from __future__ import annotations

import logging
import socket
import time

import pytest

from mnist_pipeline.training.progress import ProgressListener, ProgressSender, format_event


def _wait_for(predicate, timeout=5.0):
    deadline = time.monotonic() + timeout
    while not predicate() and time.monotonic() < deadline:
        time.sleep(0.02)
    return predicate()


@pytest.fixture
def training_log(caplog, monkeypatch):
    """caplog for ``mnist_pipeline.training`` at INFO, whatever ran before in this process.

    A Kedro session run earlier in the same process applies a logging configuration that
    may disable existing loggers or stop them from propagating to the root logger, where
    caplog listens (this test failed in a full run and passed alone): enable the logger and
    attach caplog's handler to it directly.
    """
    logger = logging.getLogger("mnist_pipeline.training")
    caplog.set_level(logging.INFO, logger=logger.name)
    monkeypatch.setattr(logger, "disabled", False)
    monkeypatch.setattr(logger, "propagate", False)  # each record once, through our handler
    logger.addHandler(caplog.handler)
    yield caplog
    logger.removeHandler(caplog.handler)


def test_chief_events_reach_the_driver_log_over_tcp(training_log):
    with ProgressListener("127.0.0.1") as listener:
        sender = ProgressSender(listener.address)
        sender.send(event="epoch", epoch=1, epochs=3, seconds=2.5,
                    logs={"loss": 0.5, "accuracy": 0.9, "val_accuracy": 0.95})  # fmt: skip
        sender.close()
        assert _wait_for(lambda: len(listener.events) == 1)
    assert listener.events[0]["logs"]["accuracy"] == 0.9
    assert "epoch 1/3 (2.5 s): loss=0.5000 accuracy=0.9000 val_accuracy=0.9500" in training_log.text


def test_non_chief_workers_send_nothing():
    with ProgressListener("127.0.0.1") as listener:
        ProgressSender(listener.address, enabled=False).send(event="start")
        time.sleep(0.2)
    assert listener.events == []


def test_unreachable_driver_logs_locally_instead_of_failing(training_log):
    with socket.socket() as sock:  # a port with nobody listening
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    sender = ProgressSender(("127.0.0.1", port))
    sender.send(event="end", num_workers=2, fit_time_s=1.0)
    assert "cannot report progress" in training_log.text
    assert "training finished on 2 worker(s)" in training_log.text


def test_format_event_resume_line():
    line = format_event({"event": "resume", "epoch": 2, "checkpoint_dir": "/x"})
    assert line == "resuming after epoch 2 from checkpoint /x"
