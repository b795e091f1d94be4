"""The one place for the Keras 3 multi-worker workaround and tf.distribute's input path.

Keras 3's TensorFlow trainer cannot ``fit`` under ``MultiWorkerMirroredStrategy``
with two or more workers (keras-team/keras#20585, tensorflow/tensorflow#72388):

1. ``_maybe_symbolic_build`` all-reduces the first *data batch* across workers
   to build the model symbolically, which fails with "Attempt to convert a value
   (PerReplica…)". Building only needs the shapes, so we build from this
   worker's local batch instead.
2. ``reduce_per_replica`` reduces the rank-0 loss/metric values with
   ``axis=0``: "Invalid reduction dimension 0 for input with 0 dimensions". We
   reduce rank-0 values with ``axis=None`` (a plain cross-worker mean).

Both patches use the private ``keras.src`` API, so keras is pinned
(requirements.lock) and a two-worker test guards them: if a new keras fixes or
moves these, the test says so. The alternative (``tf-keras`` + ``TF_USE_LEGACY_KERAS=1``)
was rejected: it swaps the whole Keras API and file format for every process,
serving included. See docs/training.md.

:func:`disable_device_iterator_autotuning` is the other one: under any distribution strategy
``tf.distribute`` feeds each device through a ``MultiDeviceIterator``, whose per-device
datasets are new tf.data pipelines with default options, autotuning on, whatever the input
pipeline says. Deleting such an iterator (Keras does at every epoch's end) waits for the
autotuning thread's next wake-up, 41 s or 82 s after the iterator was created: the Spark
modes' epochs lasted 41/82 s with the cores idle (docs/training.md, "Epochs that lasted 41
seconds"). The patch gives those per-device datasets autotuning off, as ``input_batches``
does for the input pipeline. It also uses a private API (``multi_device_iterator_ops``):
tensorflow is pinned and tests/training/test_keras_compat.py checks it.

:func:`distribute_on_host` removes that ``MultiDeviceIterator`` altogether where a worker has
one device (every CPU worker): it doubled the step time of any strategy on this machine
(docs/training.md, "Why the strategies cost twice the time"). Its patch of ``input_lib`` is
private API too, checked by the same test module.
"""

from __future__ import annotations

import functools
import logging

import keras

logger = logging.getLogger(__name__)

#: The keras version these patches were written against and tested with.
TESTED_KERAS_VERSION = "3.15.1"

_applied = False


def apply_multi_worker_fix() -> None:
    """Patch keras' TensorFlow trainer for multi-worker ``fit`` (idempotent).

    Call in every worker before ``fit`` under ``MultiWorkerMirroredStrategy``.
    Single-worker training does not need it, and is not changed by it.
    """
    global _applied  # noqa: PLW0603 - one process-wide patch, applied once
    if _applied:
        return
    import tensorflow as tf
    from keras.src import tree
    from keras.src.backend.tensorflow import trainer as tf_trainer

    if keras.__version__ != TESTED_KERAS_VERSION:
        logger.warning(
            "keras %s: the multi-worker fix was written for keras %s; "
            "run tests/training/test_runner.py's two-worker tests before trusting it",
            keras.__version__,
            TESTED_KERAS_VERSION,
        )
    original_reduce = tf_trainer.reduce_per_replica

    def _local_batch(value):
        if isinstance(value, tf.distribute.DistributedValues):
            return value.values[0]
        return value

    def _maybe_symbolic_build(self, iterator=None, data_batch=None):
        if self._distribute_strategy is None:
            return
        if iterator is not None:
            for _, _, it in iterator:
                data_batch = tree.map_structure(_local_batch, next(it))
                break
        with self.distribute_strategy.scope():
            self._symbolic_build(data_batch=data_batch)

    def reduce_per_replica(values, strategy, reduction):
        if reduction in ("auto", "mean") and tf_trainer._collective_all_reduce_multi_worker(
            strategy
        ):

            def _reduce(value):
                local = strategy.experimental_local_results(value)[0]
                if local.shape.rank == 0:
                    return strategy.reduce("MEAN", value, axis=None)
                return strategy.reduce("MEAN", value, axis=0)

            return tree.map_structure(_reduce, values)
        return original_reduce(values, strategy, reduction)

    tf_trainer.TensorFlowTrainer._maybe_symbolic_build = _maybe_symbolic_build
    tf_trainer.reduce_per_replica = reduce_per_replica
    _applied = True


_autotune_patched = False


def disable_device_iterator_autotuning() -> None:
    """No tf.data autotuning in the per-device datasets of ``tf.distribute``'s
    ``MultiDeviceIterator`` (idempotent; see the module docstring)."""
    global _autotune_patched  # noqa: PLW0603 - one process-wide patch, applied once
    if _autotune_patched:
        return
    import tensorflow as tf
    from tensorflow.python.data.ops import multi_device_iterator_ops

    original = multi_device_iterator_ops._create_device_dataset
    options = tf.data.Options()
    options.autotune.enabled = False

    @functools.wraps(original)  # __wrapped__: the original, for the test
    def _create_device_dataset(*args, **kwargs):
        return original(*args, **kwargs).with_options(options)

    multi_device_iterator_ops._create_device_dataset = _create_device_dataset
    _autotune_patched = True


def _host_input_options():
    """The ``InputOptions`` type that marks :func:`distribute_on_host`'s datasets, after
    teaching ``input_lib`` to iterate them with a plain iterator (patched once per process;
    the type lives on the patch). Private API (``input_lib``): tensorflow is pinned and
    tests/training/test_keras_compat.py checks what both patched functions do."""
    from tensorflow.python.distribute import distribute_lib, input_lib

    should_use = input_lib._should_use_multi_device_iterator
    if hasattr(should_use, "host_options"):
        return should_use.host_options

    class HostInputOptions(distribute_lib.InputOptions):
        """Input options of a one-device worker whose data stays on its host."""

        __slots__ = ()

    @functools.wraps(should_use)  # __wrapped__: the original, for the test
    def _should_use_multi_device_iterator(options):
        return not isinstance(options, HostInputOptions) and should_use(options)

    base = input_lib._SingleWorkerDatasetIteratorBase
    format_list = base._format_data_list_with_options

    @functools.wraps(format_list)
    def _format_data_list_with_options(self, data_list):
        # A plain iterator returns the element; the multi-device one, a list per device.
        if isinstance(self._options, HostInputOptions):
            return [data_list]
        return format_list(self, data_list)

    _should_use_multi_device_iterator.host_options = HostInputOptions
    input_lib._should_use_multi_device_iterator = _should_use_multi_device_iterator
    base._format_data_list_with_options = _format_data_list_with_options
    return HostInputOptions


def distribute_on_host(strategy, dataset):
    """``dataset`` distributed by ``strategy`` for ``fit``, iterated on the worker's host.

    ``tf.distribute`` otherwise feeds even a worker's single device through a
    ``MultiDeviceIterator``: a second pipeline of per-device generator datasets and remote
    calls that cost about 15 ms of CPU per batch here and slowed the model's own ops by half
    as it competed for the cores (a ``OneDeviceStrategy`` trained at 118 ms/step against 62
    without a strategy; benchmarks/strategy_overhead.py, docs/training.md). A worker with
    one device needs no per-device prefetching: its batches come from a plain iterator,
    still rebatched to the per-worker share of the global batch. Workers with several
    devices keep TensorFlow's own path, with its per-device autotuning off
    (:func:`disable_device_iterator_autotuning`).
    """
    if len(strategy.extended.worker_devices) != 1:
        disable_device_iterator_autotuning()
        return strategy.experimental_distribute_dataset(dataset)
    options = _host_input_options()(experimental_fetch_to_device=False)
    return strategy.experimental_distribute_dataset(dataset, options)
