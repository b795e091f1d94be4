"""The Keras "Simple MNIST convnet" recipe (keras.io/examples/vision/mnist_convnet), the
baseline the training benchmarks compare with. Pure Keras, imported by the benchmark
scripts beside it (``python benchmarks/<script>.py`` puts this folder on ``sys.path``)."""

from __future__ import annotations

from typing import Any

EPOCHS, BATCH_SIZE = 15, 128


def recipe_model() -> Any:
    """The recipe's CNN, compiled as the recipe compiles it (Adam, default learning rate)."""
    import keras  # the caller chose the backend (KERAS_BACKEND) before this import

    layers = keras.layers
    model = keras.Sequential(
        [
            keras.Input((28, 28, 1)),
            layers.Conv2D(32, 3, activation="relu"),
            layers.MaxPooling2D(2),
            layers.Conv2D(64, 3, activation="relu"),
            layers.MaxPooling2D(2),
            layers.Flatten(),
            layers.Dropout(0.5),
            layers.Dense(10, activation="softmax"),
        ]
    )
    model.compile("adam", "sparse_categorical_crossentropy", metrics=["accuracy"])
    return model
