"""A tiny Keras model of the trained-model contract, trained for real on a slice of MNIST.

Contract (issue 3's ``trained_model``): float32 (N, 28, 28, 1) pixel values 0–255 in (the
model rescales itself), (N, 10) softmax probabilities out. Two epochs on 3,000 real training
images give a real, far-above-chance accuracy in a few seconds. Trained once per test run:
the pytest-xdist workers load the saved model (``built_once``).

Import the fixtures into a ``conftest.py`` that needs them::

    from tests.registry.tiny_model import mnist_slices, tiny_model  # noqa: F401
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from tests.conftest import built_once, read_mnist_split

TRAIN_IMAGES = 3000
TEST_IMAGES = 1000


def read_split(folder: Path, prefix: str, count: int) -> dict[str, np.ndarray]:
    """The first ``count`` images and labels of a real MNIST split, as ingestion returns them."""
    return read_mnist_split(folder, prefix, 0, count)


def build_tiny_model(seed: int = 0):
    import keras

    keras.utils.set_random_seed(seed)
    inputs = keras.Input((28, 28, 1), name="image")
    x = keras.layers.Rescaling(1.0 / 255, name="rescale_0_255")(inputs)
    x = keras.layers.Conv2D(8, 3, activation="relu")(x)
    x = keras.layers.MaxPooling2D()(x)
    x = keras.layers.Flatten()(x)
    outputs = keras.layers.Dense(10, activation="softmax")(x)
    model = keras.Model(inputs, outputs, name="tiny_mnist")
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    return model


@pytest.fixture(scope="session")
def mnist_slices(real_mnist_dir: Path) -> dict[str, dict[str, np.ndarray]]:
    """``{"train": ..., "test": ...}``: real MNIST slices (uint8 0–255, no channel axis)."""
    return {
        "train": read_split(real_mnist_dir, "train", TRAIN_IMAGES),
        "test": read_split(real_mnist_dir, "t10k", TEST_IMAGES),
    }


def _train_tiny_model(folder: Path, train: dict[str, np.ndarray]) -> None:
    """Train the tiny model; save it (``mnist_cnn.keras``) and its history (``history.json``)."""
    model = build_tiny_model()
    fit = model.fit(
        train["images"][..., np.newaxis].astype(np.float32),
        train["labels"],
        epochs=2,
        batch_size=64,
        validation_split=0.1,
        verbose=0,
    )
    model.save(folder / "mnist_cnn.keras")
    history = {k: [float(v) for v in values] for k, values in fit.history.items()}
    (folder / "history.json").write_text(json.dumps(history))


@pytest.fixture(scope="session")
def tiny_model(mnist_slices, tmp_path_factory):
    """``(model, history)``: trained two epochs once per test run, loaded from its ``.keras``
    file (``model.saved_path``, shared by the run's workers: read it, never write it)."""
    import keras

    folder = built_once(
        tmp_path_factory,
        "tiny-model",
        lambda target: _train_tiny_model(target, mnist_slices["train"]),
    )
    model = keras.saving.load_model(folder / "mnist_cnn.keras")
    model.saved_path = folder / "mnist_cnn.keras"
    return model, json.loads((folder / "history.json").read_text())
