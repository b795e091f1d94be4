"""The one place for the Keras 3 multi-worker workaround (keras-team/keras#20585: the symbolic
build from a data batch, the rank-0 reduction) and tf.distribute's input path. The patches use
the private ``keras.src`` API, so :func:`check_supported` refuses Keras and TensorFlow releases
outside the tested range (docs/training.md says why those, and why not ``tf-keras``).
"""

from __future__ import annotations

import functools
import logging

import keras

from mnist_pipeline.versions import UnsupportedVersionError, require

__all__ = [
    "SUPPORTED_KERAS",
    "SUPPORTED_TENSORFLOW",
    "UnsupportedVersionError",
    "apply_multi_worker_fix",
    "check_supported",
    "distribute_on_host",
]

logger = logging.getLogger(__name__)

#: The Keras and TensorFlow versions these patches support: [lowest, highest) (see above).
SUPPORTED_KERAS = ("3.5", "3.16")
SUPPORTED_TENSORFLOW = ("2.16", "2.22")


def check_supported(keras_version: str | None = None, tf_version: str | None = None) -> None:
    """Fail with the supported range when Keras or TensorFlow is outside it.

    Raises:
        UnsupportedVersionError: naming the installed version and the supported range.
    """
    if keras_version is None:
        keras_version = keras.__version__
    if tf_version is None:
        import tensorflow as tf

        tf_version = tf.__version__
    for name, installed, supported in (
        ("keras", keras_version, SUPPORTED_KERAS),
        ("tensorflow", tf_version, SUPPORTED_TENSORFLOW),
    ):
        require(
            name,
            installed,
            supported,
            user=__name__,
            note="Keras 3.5-3.15 with TensorFlow 2.16-2.21; tests/training, tests/databricks",
        )


_applied = False


def apply_multi_worker_fix() -> None:
    """Patch keras' TensorFlow trainer for multi-worker ``fit`` (idempotent).

    Call in every worker before ``fit`` under ``MultiWorkerMirroredStrategy``.
    Single-worker training does not need it, and is not changed by it.
    """
    global _applied  # noqa: PLW0603 - one process-wide patch, applied once
    if _applied:
        return
    check_supported()
    import tensorflow as tf
    from keras.src import tree
    from keras.src.backend.tensorflow import trainer as tf_trainer

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
    calls that competes with the model's own ops for the cores (measured in
    benchmarks/strategy_overhead.py, figures in docs/training.md). A worker with one device
    needs no per-device prefetching: its batches come from a plain iterator,
    still rebatched to the per-worker share of the global batch. Workers with several
    devices keep TensorFlow's own path, with its per-device autotuning off
    (:func:`disable_device_iterator_autotuning`).
    """
    check_supported()
    if len(strategy.extended.worker_devices) != 1:
        disable_device_iterator_autotuning()
        return strategy.experimental_distribute_dataset(dataset)
    options = _host_input_options()(experimental_fetch_to_device=False)
    return strategy.experimental_distribute_dataset(dataset, options)
