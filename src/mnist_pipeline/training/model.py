"""The Keras CNN, built from ``training.model`` parameters, and its serving wrapper.

Two models, one set of weights:

* the **core** model that training fits: float32 (N, 28, 28, 1) in [0, 1] → (N, 10)
  softmax probabilities (the model input written by preprocessing is already scaled);
* the **trained model** that leaves training (:func:`with_preprocessing`): the same
  layers behind ``Rescaling(1/255)``, so it takes MNIST-convention images, 0–255,
  as :mod:`mnist_pipeline.image_contract` documents.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import keras

from mnist_pipeline.image_contract import IMAGE_SHAPE as IMAGE_HW
from mnist_pipeline.image_contract import MAX_PIXEL, NUM_CLASSES

IMAGE_SHAPE = (*IMAGE_HW, 1)  # the Keras model's input: the contract's image with a channel axis

_OPTIMIZERS = {"adam": keras.optimizers.Adam, "sgd": keras.optimizers.SGD}


def build_core_model(spec: Mapping[str, Any]) -> keras.Model:
    """Build the CNN from its parameters (``training.model``).

    ``spec`` keys: ``conv_blocks`` (list of ``{filters, kernel_size}``; each block is
    Conv2D → optional BatchNorm → ReLU → MaxPool 2×2), ``batch_norm`` (bool),
    ``dropout`` (rate before the classifier), ``dense_units`` (0 for none).

    Raises:
        ValueError: a missing or malformed key, named.
    """
    blocks = spec.get("conv_blocks")
    if not blocks or not isinstance(blocks, list):
        raise ValueError(
            "training.model.conv_blocks must be a non-empty list of {filters, kernel_size}, "
            f"got {blocks!r}"
        )
    batch_norm = bool(spec.get("batch_norm", True))
    layers: list[keras.layers.Layer] = []
    for index, block in enumerate(blocks):
        try:
            filters, kernel = int(block["filters"]), int(block["kernel_size"])
        except (KeyError, TypeError, ValueError) as exc:
            raise ValueError(
                f"training.model.conv_blocks[{index}] must be {{filters: int, kernel_size: int}}, "
                f"got {block!r}"
            ) from exc
        layers.append(
            keras.layers.Conv2D(filters, kernel, use_bias=not batch_norm, name=f"conv{index}")
        )
        if batch_norm:
            layers.append(keras.layers.BatchNormalization(momentum=0.9, name=f"bn{index}"))
        layers += [
            keras.layers.ReLU(name=f"relu{index}"),
            keras.layers.MaxPooling2D(2, name=f"pool{index}"),
        ]
    layers.append(keras.layers.Flatten(name="flatten"))
    if spec.get("dense_units"):
        layers.append(keras.layers.Dense(int(spec["dense_units"]), activation="relu", name="dense"))
    if spec.get("dropout"):
        layers.append(keras.layers.Dropout(float(spec["dropout"]), name="dropout"))
    layers.append(keras.layers.Dense(NUM_CLASSES, activation="softmax", name="probabilities"))
    return keras.Sequential([keras.Input(IMAGE_SHAPE, name="image"), *layers], name="mnist_cnn")


def build_optimizer(spec: Mapping[str, Any]) -> keras.optimizers.Optimizer:
    """The optimizer from ``training.optimizer`` (``name``: adam | sgd, ``learning_rate``)."""
    name = str(spec.get("name", "adam")).lower()
    if name not in _OPTIMIZERS:
        raise ValueError(
            f"training.optimizer.name must be one of {sorted(_OPTIMIZERS)}, got {name!r}"
        )
    return _OPTIMIZERS[name](learning_rate=float(spec["learning_rate"]))


def learning_rate_at(epoch: int, epochs: int, spec: Mapping[str, Any]) -> float:
    """The learning rate of ``epoch`` (0-based): constant, or a cosine decay over the run.

    A function of the epoch alone, so a resumed run continues on the same curve.
    """
    base = float(spec["learning_rate"])
    schedule = spec.get("schedule", "constant")
    if schedule == "constant":
        return base
    if schedule == "cosine":
        floor = float(spec.get("final_learning_rate", 0.0))
        return floor + (base - floor) * 0.5 * (1 + math.cos(math.pi * epoch / max(epochs, 1)))
    raise ValueError(
        f"training.optimizer.schedule must be 'constant' or 'cosine', got {schedule!r}"
    )


def compile_model(model: keras.Model, optimizer_spec: Mapping[str, Any]) -> keras.Model:
    """Compile for integer labels with accuracy."""
    model.compile(
        optimizer=build_optimizer(optimizer_spec),
        loss="sparse_categorical_crossentropy",
        metrics=["accuracy"],
    )
    return model


def with_preprocessing(core_model: keras.Model) -> keras.Model:
    """The model that leaves training: ``Rescaling(1/255)`` in front of ``core_model``.

    Input float32 (N, 28, 28, 1) with values 0–255 (MNIST convention), output
    (N, 10) softmax probabilities. The core model's weights are shared, not copied.
    """
    inputs = keras.Input(IMAGE_SHAPE, name="image")
    scaled = keras.layers.Rescaling(1.0 / MAX_PIXEL, name="rescale_0_255")(inputs)
    outputs = core_model(scaled)
    return keras.Model(inputs, outputs, name="mnist_cnn_0_255")
