"""Training on workers that share no disk with the driver.

A Spark standalone master and two workers on 127.0.0.1, each worker in its own mount
namespace with empty private mounts over exactly the driver's folders: the project's data/
and mlruns/, the temp folder and the test run's scratch folder (``unshare --mount`` + tmpfs,
root only), while the project, its venv, Python, Spark and Java stay visible wherever they
live (a clone inside the temp folder too). The model input is on abfs:// (Azurite),
the chief writes checkpoints and the model there, the driver loads the model from there;
the storage options reach the executors as arguments, never through their environment.
"""

from __future__ import annotations

import os
import signal
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np
import pytest

from mnist_pipeline import storage
from mnist_pipeline.datasets.image_shards import write_image_shards
from mnist_pipeline.training import checkpoint, load_trained_model, run_training
from mnist_pipeline.training.runner import available_slots
from tests.conftest import PROJECT_ROOT, run_folder
from tests.integration.spark_cluster import (
    StandaloneCluster,
    can_unshare,
    driver_only_folders,
    no_shared_disk_unavailable,
    python_task_workers,
)
from tests.training.conftest import (
    TEST_IMAGES,
    TRAIN_IMAGES,
    VALIDATION_IMAGES,
    _read,
    small_config,
    spark_session,
)

pytestmark = [pytest.mark.integration, pytest.mark.slow]


@pytest.fixture(scope="module")
def isolated_cluster(tmp_path_factory):
    scratch = run_folder(tmp_path_factory)
    reason = no_shared_disk_unavailable(scratch)
    if reason:
        # Without root a CI run fails (a green CI means it ran); where the folders
        # themselves rule it out, test_training_cluster.py runs the distributed case.
        if os.environ.get("CI") and not can_unshare():
            pytest.fail(reason)
        pytest.skip(reason)
    cluster = StandaloneCluster(
        tmp_path_factory.mktemp("isolated-cluster"),
        workers=2,
        private_dirs=driver_only_folders(scratch),
    ).start()
    spark = spark_session(cluster.master_url, app="mnist-pipeline-no-shared-disk")
    yield cluster, spark
    spark.stop()
    cluster.close()


@pytest.fixture(scope="module")
def abfs_model_input(real_mnist_dir, emulators):
    """The small real slice's shard folders on abfs:// (what preprocessing writes there)."""
    options = {"connection_string": emulators.azure_connection_string}
    root = f"abfs://sandbox/no-shared-disk-{os.getpid()}"
    train_x, train_y = _read(real_mnist_dir, "train", 0, TRAIN_IMAGES)
    val_x, val_y = _read(real_mnist_dir, "train", TRAIN_IMAGES, VALIDATION_IMAGES)
    test_x, test_y = _read(real_mnist_dir, "t10k", 0, TEST_IMAGES)
    paths = {}
    for name, (x, y) in {"train": (train_x, train_y), "validation": (val_x, val_y)}.items():
        paths[name] = f"{root}/05_model_input/{name}"
        write_image_shards(paths[name], (x / 255.0)[..., None], y, num_shards=4,
                           storage_options=options)  # fmt: skip
    return {**paths, "root": root, "options": options, "test_images": test_x,
            "test_labels": test_y}  # fmt: skip


def _cloud_config(tmp_path, mode, model_input, **overrides):
    config = small_config(tmp_path, mode, **overrides)
    config["output_dir"] = f"{model_input['root']}/runs/{tmp_path.name}"
    config["checkpoint"] = {
        "dir": f"{model_input['root']}/checkpoints/{tmp_path.name}",
        "keep_after_success": False,
    }
    config["distribution"]["slot_wait_s"] = 60
    return config


def _accuracy(model, model_input) -> float:
    from mnist_pipeline.image_contract import to_model_batch

    probabilities = model.predict(to_model_batch(model_input["test_images"]), verbose=0)
    return float((probabilities.argmax(axis=1) == model_input["test_labels"]).mean())


def test_the_workers_cannot_see_the_drivers_disk(isolated_cluster, tmp_path):
    """The premise: a file the driver writes under data/, mlruns/, the temp folder or the
    run's scratch folder is not there for a task on the cluster, while the project (its
    code, its venv) is, wherever it lives."""
    _, spark = isolated_cluster
    markers = [
        PROJECT_ROOT / "data" / f".driver-only-{os.getpid()}",
        PROJECT_ROOT / "mlruns" / f".driver-only-{os.getpid()}",
        Path(tempfile.gettempdir()) / f"driver-only-{os.getpid()}",
        tmp_path / "probe.txt",
    ]
    for marker in markers:
        marker.write_text("driver")
    shared = [PROJECT_ROOT / "pyproject.toml", Path(sys.executable)]
    try:
        seen = (
            spark.sparkContext.parallelize([0, 1], 2)
            .map(
                lambda _: (
                    [os.path.exists(marker) for marker in markers],
                    [os.path.exists(path) for path in shared],
                    __import__("mnist_pipeline").__name__,
                )
            )
            .collect()
        )
    finally:
        for marker in markers:
            marker.unlink()
    assert seen == [([False] * len(markers), [True] * len(shared), "mnist_pipeline")] * 2


@pytest.mark.parametrize(
    "case",
    [("distributed", {}), ("custom", {"distribution": {"communication": "ring"}})],
    ids=["distributed", "custom-ring"],
)
def test_training_on_workers_that_share_no_disk(
    case, isolated_cluster, abfs_model_input, tmp_path, caplog
):
    mode, extra = case
    _, spark = isolated_cluster
    caplog.set_level("INFO", logger="mnist_pipeline.training")
    options = abfs_model_input["options"]
    config = _cloud_config(tmp_path, mode, abfs_model_input, **extra)
    result = run_training(
        train_path=abfs_model_input["train"],
        validation_path=abfs_model_input["validation"],
        fingerprint=f"no-shared-disk-{mode}",
        config=config,
        storage_options=options,
    )
    # Two one-core executors and a barrier of two tasks: both executors took part.
    assert available_slots(spark) == 2
    assert result.num_workers == 2  # the cluster size the chief saw
    assert result.global_batch_size == config["batch_size"]
    # Per-epoch progress from the executors reached the driver's log.
    assert "training started: worker 0 of 2 (chief)" in caplog.text
    assert f"epoch {config['epochs']}/{config['epochs']}" in caplog.text
    assert result.model_path.startswith("abfs://sandbox/")
    assert storage.exists(result.model_path, options)
    # Checkpoints were on object storage and are removed after success.
    assert storage.listdir(result.checkpoint_dir, options) == []
    model = load_trained_model(result.model_path, options)  # the driver, from abfs
    assert _accuracy(model, abfs_model_input) > 0.8
    assert not any(Path(tmp_path).glob("**/*.keras"))  # nothing went to the driver's disk


def test_a_killed_worker_resumes_from_the_object_storage_checkpoint(
    isolated_cluster, abfs_model_input, tmp_path, caplog
):
    cluster, _ = isolated_cluster
    options = abfs_model_input["options"]
    config = _cloud_config(tmp_path, "distributed", abfs_model_input, epochs=6)
    outcome: dict = {}

    def _run() -> None:
        try:
            outcome["result"] = run_training(
                train_path=abfs_model_input["train"],
                validation_path=abfs_model_input["validation"],
                fingerprint="no-shared-disk-killed",
                config=config,
                storage_options=options,
            )
        except Exception as exc:
            outcome["error"] = exc

    thread = threading.Thread(target=_run)
    thread.start()
    runs = config["checkpoint"]["dir"]
    deadline = time.monotonic() + 400
    state = None
    while time.monotonic() < deadline and thread.is_alive():
        keys = storage.listdir(runs, options)
        state = checkpoint.read_state(storage.join(runs, keys[0]), options) if keys else None
        if state and state["epoch"] >= 2:
            break
        time.sleep(0.5)
    assert thread.is_alive(), f"training ended before a worker could be killed: {outcome}"
    workers = python_task_workers(cluster.folder / "work")
    assert len(workers) == 2, f"expected 2 training worker processes, found {workers}"
    os.kill(workers[-1], signal.SIGKILL)
    thread.join(600)
    assert not thread.is_alive()
    if "error" in outcome:
        raise outcome["error"]
    result = outcome["result"]
    assert "re-launching it (attempt 2 of 2)" in caplog.text
    assert result.initial_epoch >= state["epoch"] >= 2  # resumed from abfs, not restarted
    assert len(result.history["val_accuracy"]) == 6
    assert np.isfinite(result.history["val_loss"]).all()
    assert _accuracy(load_trained_model(result.model_path, options), abfs_model_input) > 0.8
