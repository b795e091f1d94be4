"""The runner's modes on a local master, and its fail-fast checks (real Spark, no mocks)."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from mnist_pipeline.training import (
    TrainingLaunchError,
    TrainingTimeoutError,
    check_launch,
    check_session_launch,
    run_training,
)
from mnist_pipeline.training.runner import available_slots, run_key
from tests.training.conftest import small_config, test_accuracy

pytestmark = pytest.mark.integration


def _train(small_model_input, config):
    return run_training(
        train_path=small_model_input["train"],
        validation_path=small_model_input["validation"],
        fingerprint="test-input",
        config=config,
    )


def test_spark_modes_refuse_to_start_without_a_spark_session(tmp_path, monkeypatch):
    from pyspark import SparkContext
    from pyspark.sql import SparkSession

    # Whatever another test left running, this process has no Spark session for this test.
    monkeypatch.setattr(SparkSession, "getActiveSession", classmethod(lambda cls: None))
    monkeypatch.setattr(SparkContext, "_active_spark_context", None)
    config = small_config(tmp_path, "local")
    with pytest.raises(TrainingLaunchError, match="need a Spark session and none is active"):
        run_training(train_path="x", validation_path="y", fingerprint="f", config=config)


def test_unknown_mode_is_refused(tmp_path):
    with pytest.raises(TrainingLaunchError, match=r"training\.mode must be one of"):
        run_training(
            train_path="x",
            validation_path="y",
            fingerprint="f",
            config=small_config(tmp_path, "horovod"),
        )


def test_single_node_trains_and_learns(tmp_path, small_model_input, caplog):
    caplog.set_level("INFO", logger="mnist_pipeline.training")
    result = _train(small_model_input, small_config(tmp_path, "single_node"))
    assert result.num_workers == 1
    assert len(result.history["val_accuracy"]) == 2
    assert test_accuracy(result.model_path, small_model_input) > 0.8
    assert "epoch 2/2" in caplog.text  # per-epoch progress reached the driver's log
    assert not Path(result.checkpoint_dir).exists()  # removed after a successful run


def test_a_run_that_dies_after_an_epoch_resumes_from_its_checkpoint(
    tmp_path, small_model_input, monkeypatch, caplog
):
    """The quick run's resume check (real training, 3,200 images, no Spark): the run dies
    right after epoch 1's checkpoint is written; the same run again resumes after epoch 1
    and trains epoch 2 only. (tests/integration/test_training_resume.py kills a real
    `kedro run` with SIGKILL.)"""
    from mnist_pipeline.training import checkpoint

    config = small_config(tmp_path, "single_node")
    save = checkpoint.save_checkpoint

    def save_then_die(model, directory, state, **kwargs):
        save(model, directory, state, **kwargs)
        if state["epoch"] == 1:
            raise RuntimeError("the machine went away after epoch 1")

    monkeypatch.setattr(checkpoint, "save_checkpoint", save_then_die)
    with pytest.raises(Exception, match="the machine went away after epoch 1"):
        _train(small_model_input, config)
    monkeypatch.setattr(checkpoint, "save_checkpoint", save)
    caplog.set_level("INFO", logger="mnist_pipeline.training")
    caplog.clear()  # only the second run's lines
    result = _train(small_model_input, config)
    assert result.initial_epoch == 1
    assert "resuming after epoch 1" in caplog.text
    assert "epoch 1/2" not in caplog.text and "epoch 2/2" in caplog.text
    assert len(result.history["val_accuracy"]) == 2  # epoch 1's from the checkpoint
    assert test_accuracy(result.model_path, small_model_input) > 0.8


def test_local_mode_trains_and_learns(tmp_path, small_model_input, local_spark, caplog):
    caplog.set_level("INFO", logger="mnist_pipeline.training")
    result = _train(small_model_input, small_config(tmp_path, "local"))
    assert result.num_workers == 1
    assert test_accuracy(result.model_path, small_model_input) > 0.8
    assert "epoch 2/2" in caplog.text


def test_local_mode_on_cpu_takes_exactly_one_slot(local_spark):
    with pytest.raises(TrainingLaunchError, match="num_slots is 2 in local mode on CPU"):
        check_session_launch(local_spark, "local", {"num_slots": 2, "use_gpu": False})


def test_more_slots_than_the_cluster_has_fails_fast(local_spark):
    assert available_slots(local_spark) == 2
    started = time.monotonic()
    with pytest.raises(TrainingLaunchError, match=r"num_slots is 3 .* only 2 task\(s\) at once"):
        check_session_launch(local_spark, "distributed", {"num_slots": 3, "slot_wait_s": 1})
    assert time.monotonic() - started < 10


@pytest.mark.parametrize(
    ("mode", "message"),
    [
        ("distributed", r"`spark.task.resource.gpu.amount` is not in the Spark configuration"),
        ("custom", r"`spark.task.resource.gpu.amount` is not in the Spark configuration"),
        ("local", "the driver has no 'gpu' resource"),
    ],
)
def test_use_gpu_without_a_gpu_resource_fails_fast(local_spark, mode, message):
    with pytest.raises(TrainingLaunchError, match=message):
        check_session_launch(local_spark, mode, {"num_slots": 1, "use_gpu": True})


def test_the_launch_check_takes_plain_values_of_a_cluster():
    """What a job cluster's specification says is enough: no session needed."""
    gpu_conf = {"spark.task.resource.gpu.amount": "1", "spark.master": "spark://m:7077"}
    distribution = {"num_slots": 4, "use_gpu": True, "slot_wait_s": 0}
    check_launch("distributed", distribution, spark_conf=gpu_conf, slots=4)
    with pytest.raises(TrainingLaunchError, match=r"num_slots is 4 .*spark://m:7077.* only 2"):
        check_launch("distributed", distribution, spark_conf=gpu_conf, slots=2)
    with pytest.raises(TrainingLaunchError, match=r"`spark.task.resource.gpu.amount` is not"):
        check_launch("custom", distribution, spark_conf={}, slots=4)
    with pytest.raises(TrainingLaunchError, match="the driver has no 'gpu' resource"):
        check_launch("local", {"num_slots": 1, "use_gpu": True}, spark_conf={}, slots=1)
    check_launch(
        "local", {"num_slots": 1, "use_gpu": True}, spark_conf={}, driver_resources={"gpu"}, slots=1
    )


def test_barrier_job_past_its_timeout_is_cancelled(tmp_path, small_model_input, local_spark):
    config = small_config(tmp_path, "distributed", distribution={"timeout_s": 3}, epochs=50)
    started = time.monotonic()
    with pytest.raises(TrainingTimeoutError, match=r"longer than .*distribution\.timeout_s"):
        _train(small_model_input, config)
    assert time.monotonic() - started < 90
    # The session survives the cancelled job.
    assert local_spark.sparkContext.parallelize(range(4), 2).sum() == 6


def test_run_key_changes_with_what_is_trained(tmp_path):
    config = small_config(tmp_path, "single_node")
    key = run_key(config, "input-a")
    assert run_key({**config, "mode": "distributed"}, "input-a") == key
    assert run_key({**config, "epochs": 3}, "input-a") != key
    assert run_key({**config, "loss": {"label_smoothing": 0.2}}, "input-a") != key
    assert run_key(config, "input-b") != key
