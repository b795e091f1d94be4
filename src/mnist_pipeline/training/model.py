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


def _cycles(
    spec: Mapping[str, Any], total_steps: int, steps_per_epoch: int | None
) -> tuple[int, int]:
    """``(steps per cycle, cycles)`` of the ``cosine`` schedule over ``total_steps``.

    ``cycle_epochs`` 0 or absent: one cycle over the whole run. Else a cycle per
    ``cycle_epochs`` epochs, which needs ``steps_per_epoch``; the last cycle takes the
    steps that are left (fewer when the run is not a whole number of cycles).
    """
    cycle_epochs = int(spec.get("cycle_epochs", 0) or 0)
    total_steps = max(int(total_steps), 1)
    if cycle_epochs <= 0:
        return total_steps, 1
    if not steps_per_epoch:
        raise ValueError("training.optimizer.cycle_epochs needs the run's steps per epoch")
    cycle_steps = min(cycle_epochs * int(steps_per_epoch), total_steps)
    return cycle_steps, math.ceil(total_steps / cycle_steps)


def learning_rate_at(
    step: int, total_steps: int, spec: Mapping[str, Any], steps_per_epoch: int | None = None
) -> float:
    """The learning rate at optimizer ``step`` (0-based) of a run of ``total_steps``.

    ``constant``: ``learning_rate``. ``cosine``: cycles of a linear warm-up over the first
    ``warmup_fraction`` of the cycle's steps from ``peak / warmup_steps`` to ``peak``, then
    a cosine decay to ``final_learning_rate`` at the cycle's last step. One cycle spans the
    whole run, or ``cycle_epochs`` epochs (of ``steps_per_epoch`` steps each) when it is set;
    the first cycle's peak is ``learning_rate``, each later one's is the previous one's ×
    ``restart_peak_factor`` (SGDR's warm restarts, with a warm-up). A function of the step
    alone, so a resumed run continues on the same curve.
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
    cycle_steps, _ = _cycles(spec, total_steps, steps_per_epoch)
    step = min(step, max(total_steps, 1) - 1)
    cycle = step // cycle_steps
    length = min(cycle_steps, total_steps - cycle * cycle_steps)
    local = step - cycle * cycle_steps
    peak = base * float(spec.get("restart_peak_factor", 1.0)) ** cycle
    warmup = int(float(spec.get("warmup_fraction", 0.0)) * length)
    if local < warmup:
        return peak * (local + 1) / warmup
    progress = min((local - warmup) / max(length - warmup, 1), 1.0)
    return floor + (peak - floor) * 0.5 * (1 + math.cos(math.pi * progress))


@keras.saving.register_keras_serializable(package="mnist_pipeline")
class WarmupCosine(keras.optimizers.schedules.LearningRateSchedule):
    """:func:`learning_rate_at`'s ``cosine`` curve per optimizer step, in Keras ops.

    Cycles of ``cycle_steps`` (the last one ``last_cycle_steps``), each a linear warm-up
    over its first ``warmup_steps`` (``last_warmup_steps``) then a cosine decay to
    ``floor``; cycle *k*'s peak is ``peak × peak_factor^k``.
    """

    def __init__(
        self,
        peak: float,
        total_steps: int,
        warmup_steps: int,
        floor: float = 0.0,
        *,
        cycle_steps: int | None = None,
        peak_factor: float = 1.0,
        last_cycle_steps: int | None = None,
        last_warmup_steps: int | None = None,
    ):
        self.peak, self.floor, self.peak_factor = float(peak), float(floor), float(peak_factor)
        self.total_steps, self.warmup_steps = int(total_steps), int(warmup_steps)
        self.cycle_steps = int(cycle_steps or total_steps)
        self.last_cycle_steps = int(last_cycle_steps or self.cycle_steps)
        self.last_warmup_steps = int(
            self.warmup_steps if last_warmup_steps is None else last_warmup_steps
        )

    def __call__(self, step):
        ops = keras.ops
        step = ops.minimum(ops.cast(step, "float32"), float(max(self.total_steps - 1, 0)))
        cycle = ops.floor(step / self.cycle_steps)
        last = cycle >= math.ceil(self.total_steps / self.cycle_steps) - 1
        length = ops.where(last, float(self.last_cycle_steps), float(self.cycle_steps))
        warmup = ops.where(last, float(self.last_warmup_steps), float(self.warmup_steps))
        local = step - cycle * self.cycle_steps
        peak = self.peak * ops.power(self.peak_factor, cycle)
        warm = peak * (local + 1.0) / ops.maximum(warmup, 1.0)
        progress = ops.clip((local - warmup) / ops.maximum(length - warmup, 1.0), 0.0, 1.0)
        decayed = self.floor + (peak - self.floor) * 0.5 * (1.0 + ops.cos(math.pi * progress))
        return ops.where(local < warmup, warm, decayed)

    def get_config(self) -> dict[str, Any]:
        return {
            "peak": self.peak,
            "total_steps": self.total_steps,
            "warmup_steps": self.warmup_steps,
            "floor": self.floor,
            "cycle_steps": self.cycle_steps,
            "peak_factor": self.peak_factor,
            "last_cycle_steps": self.last_cycle_steps,
            "last_warmup_steps": self.last_warmup_steps,
        }


def learning_rate_schedule(
    spec: Mapping[str, Any], total_steps: int, steps_per_epoch: int | None = None
):
    """The optimizer's learning rate for ``training.optimizer``: a float or a schedule."""
    learning_rate_at(0, total_steps, spec, steps_per_epoch)  # validates the schedule
    if spec.get("schedule", "constant") == "constant":
        return float(spec["learning_rate"])
    total_steps = max(int(total_steps), 1)
    cycle_steps, cycles = _cycles(spec, total_steps, steps_per_epoch)
    last_cycle_steps = total_steps - (cycles - 1) * cycle_steps
    warmup_fraction = float(spec.get("warmup_fraction", 0.0))
    return WarmupCosine(
        peak=float(spec["learning_rate"]),
        total_steps=total_steps,
        warmup_steps=int(warmup_fraction * cycle_steps),
        floor=float(spec.get("final_learning_rate", 0.0)),
        cycle_steps=cycle_steps,
        peak_factor=float(spec.get("restart_peak_factor", 1.0)),
        last_cycle_steps=last_cycle_steps,
        last_warmup_steps=int(warmup_fraction * last_cycle_steps),
    )


@keras.saving.register_keras_serializable(package="mnist_pipeline")
class SmoothedSparseCrossentropy(keras.losses.Loss):
    """Cross-entropy of integer labels against softmax probabilities, the labels smoothed.

    The target of label *y* is ``1 - label_smoothing + label_smoothing / 10`` for *y* and
    ``label_smoothing / 10`` for every other class (Keras' ``CategoricalCrossentropy``
    on one-hot labels; its sparse loss has no smoothing).
    """

    def __init__(self, label_smoothing: float, name: str = "smoothed_crossentropy", **kwargs):
        super().__init__(name=name, **kwargs)
        self.label_smoothing = float(label_smoothing)

    def call(self, y_true, y_pred):
        ops = keras.ops
        labels = ops.one_hot(ops.cast(ops.reshape(y_true, (-1,)), "int32"), NUM_CLASSES)
        return keras.losses.categorical_crossentropy(
            labels, y_pred, label_smoothing=self.label_smoothing
        )

    def get_config(self) -> dict[str, Any]:
        return {**super().get_config(), "label_smoothing": self.label_smoothing}


def build_loss(spec: Mapping[str, Any] | None):
    """The training loss from ``training.loss`` (``label_smoothing``, 0 or absent: none)."""
    smoothing = float((spec or {}).get("label_smoothing", 0.0))
    if not 0.0 <= smoothing < 1.0:
        raise ValueError(f"training.loss.label_smoothing must be in [0, 1), got {smoothing!r}")
    if not smoothing:
        return "sparse_categorical_crossentropy"
    return SmoothedSparseCrossentropy(smoothing)


def compile_model(
    model: keras.Model,
    optimizer_spec: Mapping[str, Any],
    total_steps: int = 1,
    *,
    steps_per_epoch: int | None = None,
    loss_spec: Mapping[str, Any] | None = None,
) -> keras.Model:
    """Compile for integer labels with accuracy; the schedule spans ``total_steps``.

    ``steps_per_epoch``: what a schedule restarted every ``cycle_epochs`` needs.
    ``loss_spec``: ``training.loss`` (label smoothing).
    """
    rate = learning_rate_schedule(optimizer_spec, total_steps, steps_per_epoch)
    model.compile(
        optimizer=build_optimizer(optimizer_spec, rate),
        loss=build_loss(loss_spec),
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
