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

    ``spec`` keys: ``conv_blocks`` (list of ``{filters, kernel_size}``, optional
    ``strides`` (1) and ``pool`` (true); each block is Conv2D → optional BatchNorm →
    ReLU → optional MaxPool 2×2), ``batch_norm`` (bool), ``dropout`` (rate before the
    classifier), ``dense_units`` (0 for none). ``augment`` is not part of this model
    (see :func:`training_model`).

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
            strides = int(block.get("strides", 1))
        except (AttributeError, KeyError, TypeError, ValueError) as exc:
            raise ValueError(
                f"training.model.conv_blocks[{index}] must be {{filters: int, kernel_size: int}}, "
                f"got {block!r}"
            ) from exc
        layers.append(
            keras.layers.Conv2D(
                filters, kernel, strides=strides, use_bias=not batch_norm, name=f"conv{index}"
            )
        )
        if batch_norm:
            layers.append(keras.layers.BatchNormalization(momentum=0.9, name=f"bn{index}"))
        layers.append(keras.layers.ReLU(name=f"relu{index}"))
        if block.get("pool", True):
            layers.append(keras.layers.MaxPooling2D(2, name=f"pool{index}"))
    layers.append(keras.layers.Flatten(name="flatten"))
    if spec.get("dense_units"):
        layers.append(keras.layers.Dense(int(spec["dense_units"]), activation="relu", name="dense"))
    if spec.get("dropout"):
        layers.append(keras.layers.Dropout(float(spec["dropout"]), name="dropout"))
    layers.append(keras.layers.Dense(NUM_CLASSES, activation="softmax", name="probabilities"))
    return keras.Sequential([keras.Input(IMAGE_SHAPE, name="image"), *layers], name="mnist_cnn")


def build_optimizer(spec: Mapping[str, Any], learning_rate=None) -> keras.optimizers.Optimizer:
    """The optimizer from ``training.optimizer`` (``name``: adam | sgd, ``learning_rate``).

    ``learning_rate``: a float or schedule that replaces ``spec['learning_rate']``.
    """
    name = str(spec.get("name", "adam")).lower()
    if name not in _OPTIMIZERS:
        raise ValueError(
            f"training.optimizer.name must be one of {sorted(_OPTIMIZERS)}, got {name!r}"
        )
    rate = float(spec["learning_rate"]) if learning_rate is None else learning_rate
    return _OPTIMIZERS[name](learning_rate=rate)


class RandomShift(keras.layers.Layer):
    """Shift each training image by up to ``max_shift`` whole pixels in each direction.

    Zero fill, a fresh shift per image and step, nothing at inference. Written as two
    batched matrix products with shift matrices (cheap on CPU and GPU, any Keras
    backend), where ``keras.layers.RandomTranslation`` interpolates per pixel.
    """

    def __init__(self, max_shift: int, seed: int | None = None, **kwargs: Any):
        super().__init__(**kwargs)
        self.max_shift = int(max_shift)
        self.seed_generator = keras.random.SeedGenerator(seed)

    def call(self, images, training=None):
        if not training or not self.max_shift:
            return images
        ops = keras.ops
        size = IMAGE_SHAPE[0]
        batch = ops.shape(images)[0]
        dy, dx = (
            keras.random.randint(
                (batch,), -self.max_shift, self.max_shift + 1, seed=self.seed_generator
            )
            for _ in range(2)
        )
        index = ops.arange(size)

        def shift_matrix(delta):  # (B, size, size): row i picks row i - delta
            wanted = ops.expand_dims(index, (0, 2)) - ops.reshape(delta, (-1, 1, 1))
            return ops.cast(ops.equal(wanted, ops.reshape(index, (1, 1, size))), images.dtype)

        plane = images[..., 0]
        shifted = ops.matmul(
            ops.matmul(shift_matrix(dy), plane), ops.transpose(shift_matrix(dx), (0, 2, 1))
        )
        return ops.expand_dims(shifted, -1)

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self) -> dict[str, Any]:
        return {**super().get_config(), "max_shift": self.max_shift}


def training_model(core_model: keras.Model, spec: Mapping[str, Any]) -> keras.Model:
    """What ``fit`` trains: ``core_model``, behind :class:`RandomShift` if ``spec`` asks.

    ``spec['augment']['max_shift']`` (pixels; 0 or absent: no augmentation). The
    augmentation stays out of the core model, so the saved model never carries it.
    """
    max_shift = int((spec.get("augment") or {}).get("max_shift", 0))
    if not max_shift:
        return core_model
    return keras.Sequential(
        [keras.Input(IMAGE_SHAPE, name="image"), RandomShift(max_shift, name="shift"), core_model],
        name="mnist_cnn_augmented",
    )


SCHEDULES = ("constant", "cosine")


def learning_rate_at(step: int, total_steps: int, spec: Mapping[str, Any]) -> float:
    """The learning rate at optimizer ``step`` (0-based) of a run of ``total_steps``.

    ``constant``: ``learning_rate``. ``cosine``: a linear warm-up over the first
    ``warmup_fraction`` of the steps from ``learning_rate / warmup_steps`` to
    ``learning_rate``, then a cosine decay to ``final_learning_rate`` at the last step.
    A function of the step alone, so a resumed run continues on the same curve.
    """
    base = float(spec["learning_rate"])
    schedule = spec.get("schedule", "constant")
    if schedule not in SCHEDULES:
        raise ValueError(
            f"training.optimizer.schedule must be one of {SCHEDULES}, got {schedule!r}"
        )
    if schedule == "constant":
        return base
    floor = float(spec.get("final_learning_rate", 0.0))
    warmup = int(float(spec.get("warmup_fraction", 0.0)) * total_steps)
    if step < warmup:
        return base * (step + 1) / warmup
    progress = min((step - warmup) / max(total_steps - warmup, 1), 1.0)
    return floor + (base - floor) * 0.5 * (1 + math.cos(math.pi * progress))


@keras.saving.register_keras_serializable(package="mnist_pipeline")
class WarmupCosine(keras.optimizers.schedules.LearningRateSchedule):
    """:func:`learning_rate_at`'s ``cosine`` curve per optimizer step, in Keras ops."""

    def __init__(self, peak: float, total_steps: int, warmup_steps: int, floor: float = 0.0):
        self.peak, self.floor = float(peak), float(floor)
        self.total_steps, self.warmup_steps = int(total_steps), int(warmup_steps)

    def __call__(self, step):
        ops = keras.ops
        step = ops.cast(step, "float32")
        warm = self.peak * (step + 1.0) / max(self.warmup_steps, 1)
        span = max(self.total_steps - self.warmup_steps, 1)
        progress = ops.clip((step - self.warmup_steps) / span, 0.0, 1.0)
        decayed = self.floor + (self.peak - self.floor) * 0.5 * (1.0 + ops.cos(math.pi * progress))
        return ops.where(step < self.warmup_steps, warm, decayed)

    def get_config(self) -> dict[str, Any]:
        return {
            "peak": self.peak,
            "total_steps": self.total_steps,
            "warmup_steps": self.warmup_steps,
            "floor": self.floor,
        }


def learning_rate_schedule(spec: Mapping[str, Any], total_steps: int):
    """The optimizer's learning rate for ``training.optimizer``: a float or a schedule."""
    learning_rate_at(0, total_steps, spec)  # validates the schedule's name
    if spec.get("schedule", "constant") == "constant":
        return float(spec["learning_rate"])
    return WarmupCosine(
        peak=float(spec["learning_rate"]),
        total_steps=total_steps,
        warmup_steps=int(float(spec.get("warmup_fraction", 0.0)) * total_steps),
        floor=float(spec.get("final_learning_rate", 0.0)),
    )


def compile_model(
    model: keras.Model, optimizer_spec: Mapping[str, Any], total_steps: int = 1
) -> keras.Model:
    """Compile for integer labels with accuracy; the schedule spans ``total_steps``."""
    rate = learning_rate_schedule(optimizer_spec, total_steps)
    model.compile(
        optimizer=build_optimizer(optimizer_spec, rate),
        loss="sparse_categorical_crossentropy",
        metrics=["accuracy"],
    )
    return model


def with_preprocessing(core_model: keras.Model) -> keras.Model:
    """The model that leaves training: ``Rescaling(1/255)`` in front of ``core_model``.

    Input float32 (N, 28, 28, 1) with values 0–255 (MNIST convention), output
    (N, 10) softmax probabilities. The core model is an uncompiled copy with the same
    weights: the saved model then carries no optimizer, so no project class (the
    :class:`WarmupCosine` schedule) is needed to load it in the model's own environment.
    """
    # from_config, not clone_model: cloning a compiled Sequential keeps its optimizer.
    core = type(core_model).from_config(core_model.get_config())
    core.set_weights(core_model.get_weights())
    inputs = keras.Input(IMAGE_SHAPE, name="image")
    scaled = keras.layers.Rescaling(1.0 / MAX_PIXEL, name="rescale_0_255")(inputs)
    outputs = core(scaled)
    return keras.Model(inputs, outputs, name="mnist_cnn_0_255")
