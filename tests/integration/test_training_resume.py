"""Checkpoint and resume: a `kedro run` of training killed with SIGKILL mid-run resumes
from its last completed epoch when run again."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.mlflow_stores import empty_store
from tests.training.conftest import write_model_input

pytestmark = [pytest.mark.integration, pytest.mark.slow]

KEDRO = str(Path(sys.executable).parent / "kedro")
EPOCHS = 6
PARAMS = f"training.epochs={EPOCHS},training.batch_size=64"


def _environment(scratch: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("MLFLOW_", "DATABRICKS_"))}
    env.update(
        KEDRO_DISABLE_TELEMETRY="1",
        SPARK_LOCAL_IP="127.0.0.1",
        MNIST_DATA_ROOT=str(scratch / "data"),
        MLFLOW_SANDBOX_TRACKING_URI=empty_store(scratch / "sandbox.db"),
        MLFLOW_SANDBOX_ARTIFACT_LOCATION=str(scratch / "sandbox-artifacts"),
        TRAINING_MODE="single_node",
        TRAINING_CHECKPOINT_DIR=str(scratch / "checkpoints"),
    )
    return env


def _command() -> list[str]:
    return [KEDRO, "run", "--env", "azure", "--pipelines", "training", "--params", PARAMS]


def _checkpointed_epoch(folder: Path) -> int:
    states = list(folder.glob("*/state.json"))
    if not states:
        return 0
    try:
        return int(json.loads(states[0].read_text())["epoch"])
    except (ValueError, KeyError):  # being replaced right now
        return 0


def test_a_killed_run_resumes_from_its_last_completed_epoch(tmp_path, real_mnist_dir, project_root):
    model_input = write_model_input(real_mnist_dir, tmp_path / "data")
    (tmp_path / "data/05_model_input/fingerprint.json").write_text(
        json.dumps({"model_input": "resume-test-input", "splits": {}})
    )
    assert Path(model_input["train"]).is_dir()
    env, checkpoints = _environment(tmp_path), tmp_path / "checkpoints"

    first = subprocess.Popen(
        _command(),
        cwd=project_root,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    try:
        deadline = time.monotonic() + 300
        while _checkpointed_epoch(checkpoints) < 2 and time.monotonic() < deadline:
            assert first.poll() is None, "the first run ended before it could be killed"
            time.sleep(0.2)
        assert _checkpointed_epoch(checkpoints) >= 2, "no checkpoint of epoch 2 in 300 s"
    finally:
        os.killpg(first.pid, signal.SIGKILL)
        first.wait(timeout=30)
    assert first.returncode == -signal.SIGKILL
    killed_at = _checkpointed_epoch(checkpoints)
    assert 2 <= killed_at < EPOCHS

    second = subprocess.run(
        _command(),
        check=False,
        cwd=project_root,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert second.returncode == 0, second.stdout[-3000:] + second.stderr[-3000:]
    output = " ".join((second.stdout + second.stderr).split())
    assert f"resuming after epoch {killed_at}" in output
    # TensorFlow was imported before Keras (mnist_pipeline.training): MLflow's autolog hook
    # did not fire on a half-imported Keras in this fresh process.
    assert "enabling autologging" not in output
    summary = json.loads((tmp_path / "data/08_reporting/training_summary.json").read_text())
    assert summary["resumed_from_epoch"] == killed_at
    assert summary["epochs"] == EPOCHS
    history = json.loads((tmp_path / "data/08_reporting/training_history.json").read_text())
    assert len(history["val_accuracy"]) == EPOCHS  # the epochs before the kill are kept
    assert history["val_accuracy"][-1] > 0.8
    assert (tmp_path / "data/06_models/mnist_cnn.keras").is_file()
    assert not list(checkpoints.glob("*/state.json"))  # removed after success
