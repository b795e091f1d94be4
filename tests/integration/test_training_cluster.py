"""distributed and custom modes on a real Spark standalone cluster: a master and two
one-core workers on 127.0.0.1, started from the installed pyspark's scripts."""

from __future__ import annotations

import json
import os
import signal
import threading
import time
from pathlib import Path

import pytest

from mnist_pipeline.training import run_training
from mnist_pipeline.training.runner import available_slots
from tests.integration.spark_cluster import StandaloneCluster
from tests.training.conftest import (
    small_config,
    spark_session,
    test_accuracy,
    write_model_input,
)

pytestmark = [pytest.mark.integration, pytest.mark.slow]


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    started = StandaloneCluster(tmp_path_factory.mktemp("spark-cluster"), workers=2).start()
    yield started
    started.close()


@pytest.fixture(scope="module")
def cluster_model_input(real_mnist_dir, tmp_path_factory):
    return write_model_input(real_mnist_dir, tmp_path_factory.mktemp("model_input"))


@pytest.fixture(scope="module")
def cluster_spark(cluster):
    spark = spark_session(cluster.master_url, app="mnist-pipeline-cluster-tests")
    yield cluster, spark
    spark.stop()


@pytest.mark.parametrize(
    "case",
    [
        ("distributed", {}),
        ("custom", {"distribution": {"communication": "ring"}}),
    ],
    ids=["distributed", "custom-ring"],
)
def test_two_executors_train_together_and_learn(
    case, tmp_path, cluster_model_input, cluster_spark, caplog
):
    mode, extra = case
    cluster, spark = cluster_spark
    small_model_input = cluster_model_input
    caplog.set_level("INFO", logger="mnist_pipeline.training")
    config = small_config(tmp_path, mode, **extra)
    config["distribution"]["slot_wait_s"] = 60  # executors register after the session starts
    try:
        result = run_training(
            train_path=small_model_input["train"],
            validation_path=small_model_input["validation"],
            fingerprint="test-input",
            config=config,
        )
    except Exception:
        print(cluster.executor_logs())
        raise
    assert available_slots(spark) == 2
    assert result.num_workers == 2  # the cluster size the chief saw
    assert result.global_batch_size == 64
    assert Path(result.model_path).is_file()
    assert test_accuracy(result.model_path, small_model_input) > 0.8
    # Per-epoch progress from the executors reached the driver's log.
    assert "training started: worker 0 of 2 (chief)" in caplog.text
    assert "epoch 2/2" in caplog.text
    # Both executors took part: each has its own executor folder with a log.
    assert len(list(cluster.folder.glob("work/app-*/*/stderr"))) >= 2


def _python_task_workers(work_dir: Path) -> list[int]:
    """PIDs of the Python task workers (forked by a pyspark daemon) of this cluster's executors."""
    pids = []
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            cmdline = (proc / "cmdline").read_bytes().replace(b"\0", b" ").decode()
            parent = (proc / "stat").read_text().rsplit(")", 1)[1].split()[1]
            parent_cmdline = Path(f"/proc/{parent}/cmdline").read_bytes().replace(b"\0", b" ")
            cwd = os.readlink(proc / "cwd")
        except OSError:
            continue
        if (
            "pyspark.daemon" in cmdline
            and b"pyspark.daemon" in parent_cmdline
            and cwd.startswith(str(work_dir))
        ):
            pids.append(int(proc.name))
    return pids


def test_a_killed_worker_resumes_from_the_last_checkpoint(
    tmp_path, cluster_model_input, cluster_spark, caplog
):
    """SIGKILL one training worker mid-run: the barrier job fails (Spark does not retry a
    barrier result stage), the runner re-launches it and the new
    workers resume from the chief's last checkpoint instead of starting over."""
    cluster, _ = cluster_spark
    config = small_config(tmp_path, "distributed", epochs=8)
    config["distribution"]["slot_wait_s"] = 60
    outcome: dict = {}

    def _run() -> None:
        try:
            outcome["result"] = run_training(
                train_path=cluster_model_input["train"],
                validation_path=cluster_model_input["validation"],
                fingerprint="killed-worker-input",
                config=config,
            )
        except Exception as exc:
            outcome["error"] = exc

    thread = threading.Thread(target=_run)
    thread.start()
    states = tmp_path / "checkpoints"
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline and thread.is_alive():
        done = [json.loads(p.read_text())["epoch"] for p in states.glob("*/state.json")]
        if done and done[0] >= 2:
            break
        time.sleep(0.2)
    assert thread.is_alive(), f"training ended before a worker could be killed: {outcome}"
    workers = _python_task_workers(cluster.folder / "work")
    assert len(workers) == 2, f"expected 2 training worker processes, found {workers}"
    os.kill(workers[-1], signal.SIGKILL)
    killed_after = json.loads(next(states.glob("*/state.json")).read_text())["epoch"]
    thread.join(600)
    assert not thread.is_alive()
    if "error" in outcome:
        print(cluster.executor_logs())
        raise outcome["error"]
    result = outcome["result"]
    assert "the barrier training job failed" in caplog.text
    assert "re-launching it (attempt 2 of 2)" in caplog.text
    assert result.initial_epoch >= killed_after >= 2  # resumed, not restarted
    assert len(result.history["val_accuracy"]) == 8
    assert result.num_workers == 2
    assert test_accuracy(result.model_path, cluster_model_input) > 0.8
