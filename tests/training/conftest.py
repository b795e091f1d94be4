"""Fixtures for the training tests: a small real-MNIST model input and a training config."""

from __future__ import annotations

import copy
import re
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import yaml

from mnist_pipeline.datasets.image_shards import write_image_shards
from tests.conftest import PROJECT_ROOT, read_mnist_split

TRAIN_IMAGES = 3200
VALIDATION_IMAGES = 800
TEST_IMAGES = 1000


def _read(folder: Path, prefix: str, start: int, count: int) -> tuple[np.ndarray, np.ndarray]:
    split = read_mnist_split(folder, prefix, start, count)
    return split["images"], split["labels"]


def write_model_input(real_mnist_dir: Path, root: Path) -> dict[str, Any]:
    """Preprocessing's outputs for a small real slice: shard folders + test arrays (0–255)."""
    train_x, train_y = _read(real_mnist_dir, "train", 0, TRAIN_IMAGES)
    val_x, val_y = _read(real_mnist_dir, "train", TRAIN_IMAGES, VALIDATION_IMAGES)
    test_x, test_y = _read(real_mnist_dir, "t10k", 0, TEST_IMAGES)
    paths = {}
    for name, (x, y) in {"train": (train_x, train_y), "validation": (val_x, val_y)}.items():
        path = root / "05_model_input" / name
        write_image_shards(str(path), (x / 255.0)[..., np.newaxis], y, num_shards=4)
        paths[name] = str(path)
    return {**paths, "test_images": test_x, "test_labels": test_y}


@pytest.fixture(scope="session")
def small_model_input(real_mnist_dir: Path, tmp_path_factory) -> dict[str, Any]:
    """``train``/``validation`` shard paths (3,200/800 real images), ``test_images``/``labels``."""
    return write_model_input(real_mnist_dir, tmp_path_factory.mktemp("model_input"))


_ENV_DEFAULT = re.compile(r"^\$\{env:\w+,([^${}]*)\}$")


def _with_env_defaults(value: Any) -> Any:
    """``${env:NAME,default}`` values as their defaults (tests don't read the shell's)."""
    if isinstance(value, dict):
        return {key: _with_env_defaults(item) for key, item in value.items()}
    if isinstance(value, str) and (match := _ENV_DEFAULT.match(value)):
        return match.group(1)
    return value


def base_training_params() -> dict[str, Any]:
    """``training`` from conf/base/parameters_training.yml: simple ``${env:...}`` values
    at their defaults (mode, preset), paths left unresolved."""
    text = (PROJECT_ROOT / "conf/base/parameters_training.yml").read_text()
    return _with_env_defaults(yaml.safe_load(text)["training"])


def small_config(tmp_path: Path, mode: str, **overrides: Any) -> dict[str, Any]:
    """The base training parameters, made small and pointed at ``tmp_path``."""
    config = copy.deepcopy(base_training_params())
    config.update(
        mode=mode,
        epochs=2,
        batch_size=64,
        output_dir=str(tmp_path / "runs"),
        checkpoint={"dir": str(tmp_path / "checkpoints"), "keep_after_success": False},
    )
    config["model"]["conv_blocks"] = [
        {"filters": 16, "kernel_size": 3},
        {"filters": 32, "kernel_size": 3},
    ]
    config["worker_threads"] = {"intra_op": 1, "inter_op": 1}
    config["distribution"].update(num_slots=1 if mode == "local" else 2, slot_wait_s=5)
    for key, value in overrides.items():
        if isinstance(value, dict) and isinstance(config.get(key), dict):
            config[key].update(value)
        else:
            config[key] = value
    return config


def test_accuracy(model_path: str, model_input: dict[str, Any]) -> float:
    """Accuracy of a saved trained model on the real test slice, fed 0–255 images."""
    import keras

    from mnist_pipeline.image_contract import to_model_batch

    model = keras.saving.load_model(model_path)
    probabilities = model.predict(to_model_batch(model_input["test_images"]), verbose=0)
    return float((probabilities.argmax(axis=1) == model_input["test_labels"]).mean())


test_accuracy.__test__ = False  # a helper, not a test


def spark_session(master: str, app: str = "mnist-pipeline-tests", reuse_workers: bool = False):
    """A real SparkSession as the project's hook builds it for training (loopback, fresh
    workers), or for batch scoring (``reuse_workers``)."""
    from mnist_pipeline.hooks import create_spark_session, spark_settings

    return create_spark_session(
        spark_settings(
            {
                "spark.master": master,
                "spark.app.name": app,
                "spark.driver.host": "127.0.0.1",
                "spark.driver.bindAddress": "127.0.0.1",
                "spark.python.worker.reuse": reuse_workers,
                "spark.ui.enabled": False,
                "spark.executor.memory": "2g",
            }
        )
    )


@pytest.fixture(scope="module")
def local_spark():
    """A local[2] Spark session (two task slots) for the module; stopped after."""
    spark = spark_session("local[2]")
    yield spark
    spark.stop()
