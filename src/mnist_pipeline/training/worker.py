"""The training function that runs in each training process (driver or Spark task): plain
arguments in, plain data out, so Spark pickles it by reference and executors import it from the
installed package. Each worker reads its shard of the model input by URL, resumes from the
chief's last checkpoint; only the chief writes checkpoints and the model (docs/training.md).
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Mapping
from typing import Any

from mnist_pipeline.datasets import read_image_shards
from mnist_pipeline.datasets.image_shards import read_manifest

from . import checkpoint
from .progress import ProgressSender
from .threads import WorkerThreads

logger = logging.getLogger(__name__)

#: How :func:`train` finds its ``tf.distribute`` strategy.
STRATEGIES = ("default", "runner", "custom")
COMMUNICATION = ("auto", "ring", "nccl")


def _custom_strategy(communication: str, threads: WorkerThreads):
    """``use_custom_strategy=True``: this function builds its own strategy."""
    import tensorflow as tf
    from tensorflow.python.eager import context

    if communication not in COMMUNICATION:
        raise ValueError(
            f"training.communication must be one of {COMMUNICATION}, got {communication!r}"
        )
    # A reused Python worker keeps the previous run's collective ops configured. The
    # reset also drops the thread settings of the old context: set them on the new one.
    context._reset_context()
    threads.apply()
    implementation = getattr(
        tf.distribute.experimental.CommunicationImplementation, communication.upper()
    )
    options = tf.distribute.experimental.CommunicationOptions(implementation=implementation)
    return tf.distribute.MultiWorkerMirroredStrategy(communication_options=options)


def _worker_position(strategy) -> tuple[int, int]:
    """``(worker_index, num_workers)`` of this process in the training cluster."""
    resolver = getattr(strategy, "cluster_resolver", None)
    if resolver is None or not resolver.cluster_spec().as_dict():
        return 0, 1
    workers = resolver.cluster_spec().as_dict().get("worker", [])
    return int(resolver.task_id or 0), max(len(workers), 1)


PREFETCH_BATCHES = 2


def input_batches(images, labels, batch_size: int, *, seed: int | None):
    """An endless stream of full batches (fit bounds it with a step count)."""
    import tensorflow as tf

    dataset = tf.data.Dataset.from_tensor_slices((images, labels))
    if seed is not None:
        dataset = dataset.shuffle(len(labels), seed=seed, reshuffle_each_iteration=True)
    dataset = dataset.repeat().batch(batch_size, drop_remainder=True)
    dataset = dataset.prefetch(PREFETCH_BATCHES)
    options = tf.data.Options()
    # Each worker already reads only its own shard files.
    options.experimental_distribute.auto_shard_policy = tf.data.experimental.AutoShardPolicy.OFF
    # No autotuning. Its background thread sleeps 10 ms, 20 ms, 40 ms... and notices that
    # its iterator was deleted only when it wakes, 41 s, 82 s... after the iterator was
    # created, and the deletion waits for it. Keras deletes the validation iterator at every
    # epoch's end, so an epoch of 24 s lasted 41 s, one of 54 s lasted 82 s (docs/training.md).
    # A from-memory pipeline needs no tuning: a fixed prefetch keeps the next batches ready.
    options.autotune.enabled = False
    return dataset.with_options(options)


def train(
    *,
    train_path: str,
    validation_path: str,
    config: Mapping[str, Any],
    output_dir: str,
    checkpoint_dir: str,
    progress_address: tuple[str, int] | None = None,
    strategy: str = "default",
    communication: str = "auto",
    storage_options: Mapping[str, Any] | None = None,
    threads: WorkerThreads | None = None,
) -> dict[str, Any]:
    """Train the CNN in this process and return where the chief saved it.

    Args:
        train_path: the training split's shard folder (absolute path or URL).
        validation_path: the validation split's shard folder.
        config: the ``training`` parameters (model, optimizer, epochs, batch_size,
            seed, worker_threads).
        output_dir: the folder the chief writes the final model into.
        checkpoint_dir: the durable folder of this run's per-epoch checkpoint.
        progress_address: ``(host, port)`` of the driver's progress listener.
        strategy: ``default`` (no distribution: single node), ``runner`` (the
            runner already opened a ``MultiWorkerMirroredStrategy`` scope) or
            ``custom`` (build our own, with ``communication``).
        communication: the collective implementation in ``custom``: auto, ring, nccl.
        storage_options: fsspec options (credentials included) for the shards, the
            checkpoints and the model (:func:`mnist_pipeline.storage.resolve_options`).
        threads: ``worker_threads`` as the driver resolved it (:class:`.threads.WorkerThreads`;
            from ``config`` when ``None``).

    Returns:
        ``model_path`` (chief only; ``None`` elsewhere), ``history`` (metric →
        per-epoch list, from epoch 1 even after a resume), ``num_workers``,
        ``worker_index``, ``initial_epoch``, ``epochs``, ``fit_time_s``,
        ``examples_trained`` (in this run, all workers), ``global_batch_size``.
    """
    import tensorflow as tf  # before Keras: see mnist_pipeline.training

    # isort: split
    import keras

    from .model import build_core_model, compile_model, training_model, with_preprocessing

    if strategy not in STRATEGIES:
        raise ValueError(f"strategy must be one of {STRATEGIES}, got {strategy!r}")
    if threads is None:
        threads = WorkerThreads.from_config(config.get("worker_threads"))
    if strategy == "custom":
        distribution = _custom_strategy(communication, threads)
    else:
        threads.apply()  # under the runner TensorFlow already started: the unpickling did it
        distribution = tf.distribute.get_strategy()
    worker_index, num_workers = _worker_position(distribution)
    is_chief = worker_index == 0
    if num_workers > 1:
        from .keras_compat import apply_multi_worker_fix

        apply_multi_worker_fix()

    epochs, batch_size = int(config["epochs"]), int(config["batch_size"])
    seed = int(config["seed"])
    keras.utils.set_random_seed(seed)
    reporter = ProgressSender(progress_address, enabled=is_chief)
    reporter.send(event="start", worker_index=worker_index, num_workers=num_workers, epochs=epochs)

    # ``batch_size`` is the global batch: tf.distribute splits each worker's batches
    # so that one step consumes ``batch_size`` examples across all workers. Every
    # worker takes the same number of steps, whatever the size of its shard files.
    options = dict(storage_options or {})
    images, labels = read_image_shards(train_path, worker_index, num_workers, options)
    val_images, val_labels = read_image_shards(validation_path, worker_index, num_workers, options)
    total = int(read_manifest(train_path, options)["num_examples"])
    val_total = int(read_manifest(validation_path, options)["num_examples"])
    steps_per_epoch = max(total // batch_size, 1)
    validation_steps = max(math.ceil(val_total / batch_size), 1)
    train_data = input_batches(images, labels, batch_size, seed=seed + worker_index)
    validation_data = input_batches(val_images, val_labels, batch_size, seed=None)
    if strategy != "default":
        from .keras_compat import distribute_on_host

        # What fit would do with the datasets, without tf.distribute's per-device pipeline
        # (it halved a one-device worker's images/s) or its autotuning pauses elsewhere.
        train_data = distribute_on_host(distribution, train_data)
        validation_data = distribute_on_host(distribution, validation_data)

    scope = distribution.scope() if strategy == "custom" else _null_scope()
    with scope:
        core = build_core_model(config["model"])
        model = compile_model(
            training_model(core, config["model"]),
            config["optimizer"],
            epochs * steps_per_epoch,
            steps_per_epoch=steps_per_epoch,
            loss_spec=config.get("loss"),
        )
        state = checkpoint.read_state(checkpoint_dir, options)
        initial_epoch, history = 0, {}
        if state is not None:
            model.optimizer.build(model.trainable_variables)
            checkpoint.load_weights(model, checkpoint_dir, state, options)
            initial_epoch, history = int(state["epoch"]), dict(state["history"])
            # The learning rate is a function of the step: continue on the same curve.
            model.optimizer.iterations.assign(initial_epoch * steps_per_epoch)
            reporter.send(event="resume", epoch=initial_epoch, checkpoint_dir=checkpoint_dir)

        class _Epochs(keras.callbacks.Callback):
            def on_epoch_begin(self, epoch, logs=None):
                self._started = time.perf_counter()

            def on_epoch_end(self, epoch, logs=None):
                figures = {key: float(value) for key, value in (logs or {}).items()}
                for key, value in figures.items():
                    history.setdefault(key, []).append(value)
                checkpoint.save_checkpoint(
                    self.model,
                    checkpoint_dir,
                    {"epoch": epoch + 1, "epochs": epochs, "history": history},
                    is_chief=is_chief,
                    options=options,
                )
                reporter.send(
                    event="epoch",
                    epoch=epoch + 1,
                    epochs=epochs,
                    seconds=time.perf_counter() - self._started,
                    logs=figures,
                )

        started = time.perf_counter()
        if initial_epoch < epochs:
            model.fit(
                train_data,
                epochs=epochs,
                initial_epoch=initial_epoch,
                steps_per_epoch=steps_per_epoch,
                validation_data=validation_data,
                validation_steps=validation_steps,
                callbacks=[_Epochs()],
                shuffle=False,  # the dataset shuffles itself
                verbose=0,
            )
        fit_time = time.perf_counter() - started

        model_path = checkpoint.save_model(
            with_preprocessing(core), output_dir, is_chief=is_chief, options=options
        )

    result = {
        "model_path": model_path if is_chief else None,
        "history": history,
        "num_workers": num_workers,
        "worker_index": worker_index,
        "initial_epoch": initial_epoch,
        "epochs": epochs,
        "fit_time_s": fit_time,
        "examples_trained": (epochs - initial_epoch) * steps_per_epoch * batch_size,
        "global_batch_size": batch_size,
    }
    reporter.send(event="end", num_workers=num_workers, fit_time_s=fit_time)
    reporter.close()
    return result


class _null_scope:
    def __enter__(self):
        return None

    def __exit__(self, *exc):
        return False
