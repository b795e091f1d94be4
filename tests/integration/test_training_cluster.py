"""distributed mode on a real Spark standalone cluster whose workers share the driver's disk
(a laptop's cluster): a master and two one-core workers on 127.0.0.1, started from the
installed pyspark's scripts.

`custom` mode and the killed-worker resume run once, on the stricter cluster whose workers
share no disk (tests/integration/cloud/test_cloud_cluster.py). That cluster needs root and
`unshare` (and a temp folder that is not the project itself); where it can run (CI runs as
root), its `distributed` test makes the same checks as this one, so this one runs only
where it cannot (a developer's laptop): the same behaviour is not trained twice in a CI run.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from mnist_pipeline.training import run_training
from mnist_pipeline.training.runner import available_slots
from tests.integration.spark_cluster import StandaloneCluster, no_shared_disk_unavailable
from tests.training.conftest import (
    small_config,
    spark_session,
    test_accuracy,
    write_model_input,
)

pytestmark = [
    pytest.mark.integration,
    pytest.mark.slow,
    pytest.mark.skipif(
        no_shared_disk_unavailable() is None,
        reason="the no-shared-disk cluster runs here: its distributed test covers this one",
    ),
]


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


def test_two_executors_train_together_and_learn(
    tmp_path, cluster_model_input, cluster_spark, caplog
):
    cluster, spark = cluster_spark
    small_model_input = cluster_model_input
    caplog.set_level("INFO", logger="mnist_pipeline.training")
    config = small_config(tmp_path, "distributed")
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
