"""The tf.data patch of training/keras_compat.py (the multi-worker Keras fix has its own
two-worker tests in test_runner.py and the cluster tests)."""

from __future__ import annotations


def test_per_device_datasets_of_a_strategy_are_not_autotuned(monkeypatch):
    """tf.distribute feeds each device through a new pipeline with default options
    (autotuning on, whatever the input pipeline says): deleting its iterator at an epoch's
    end then waits for the autotuning thread's next wake-up (41 s, 82 s...)."""
    import tensorflow as tf
    from tensorflow.python.data.ops import multi_device_iterator_ops as mdi

    from mnist_pipeline.training import keras_compat

    # TensorFlow's own function (an earlier test's training may have patched it already);
    # whatever this test does to the module is undone afterwards.
    original = getattr(mdi._create_device_dataset, "__wrapped__", mdi._create_device_dataset)
    monkeypatch.setattr(mdi, "_create_device_dataset", original)
    monkeypatch.setattr(keras_compat, "_autotune_patched", False)
    strategy = tf.distribute.MirroredStrategy(["/cpu:0"])
    source = tf.data.Dataset.range(4).batch(2)
    quiet = tf.data.Options()
    quiet.autotune.enabled = False
    source = source.with_options(quiet)  # as input_batches makes it

    def device_datasets() -> list:
        made, create = [], mdi._create_device_dataset

        def spy(*args, **kwargs):
            made.append(create(*args, **kwargs))
            return made[-1]

        mdi._create_device_dataset = spy
        try:
            iterator = iter(strategy.experimental_distribute_dataset(source))
            assert next(iterator).numpy().tolist() == [0, 1]
        finally:
            mdi._create_device_dataset = create
        assert made
        return made

    # The cause: the input pipeline's option does not reach the device's pipeline.
    assert [d.options().autotune.enabled for d in device_datasets()] == [None]
    keras_compat.disable_device_iterator_autotuning()
    keras_compat.disable_device_iterator_autotuning()  # idempotent: wrapped once
    assert [d.options().autotune.enabled for d in device_datasets()] == [False]


def test_a_one_device_workers_batches_come_from_a_plain_iterator():
    """distribute_on_host: the same batches as tf.distribute's own path, without its
    MultiDeviceIterator (a second pipeline that doubled the step time on CPU)."""
    import tensorflow as tf
    from tensorflow.python.distribute import input_lib

    from mnist_pipeline.training.keras_compat import distribute_on_host

    strategy = tf.distribute.MirroredStrategy(["/cpu:0"])
    source = tf.data.Dataset.range(12).batch(4)

    def batches(distributed) -> tuple[list, list]:
        iterator = iter(distributed)
        kinds = [type(i._iterator).__name__ for i in iterator._iterators]
        return [next(iterator).numpy().tolist() for _ in range(3)], kinds

    expected, kinds = batches(strategy.experimental_distribute_dataset(source))
    assert kinds == ["OwnedMultiDeviceIterator"]
    actual, kinds = batches(distribute_on_host(strategy, source))
    assert actual == expected == [[0, 1, 2, 3], [4, 5, 6, 7], [8, 9, 10, 11]]
    assert kinds == ["OwnedIterator"]
    # TensorFlow's own datasets keep their path once the patch is in.
    _, kinds = batches(strategy.experimental_distribute_dataset(source))
    assert kinds == ["OwnedMultiDeviceIterator"]
    assert hasattr(input_lib._should_use_multi_device_iterator, "__wrapped__")


def test_keras_fits_a_dataset_distributed_on_the_host():
    import keras
    import numpy as np
    import tensorflow as tf

    from mnist_pipeline.training.keras_compat import distribute_on_host

    strategy = tf.distribute.MirroredStrategy(["/cpu:0"])
    rng = np.random.default_rng(0)
    images = rng.random((64, 4), dtype=np.float32)
    labels = (images.sum(axis=1) > 2).astype(np.int64)
    source = tf.data.Dataset.from_tensor_slices((images, labels)).repeat().batch(16)
    with strategy.scope():
        model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(2, activation="softmax")])
        model.compile("adam", "sparse_categorical_crossentropy", metrics=["accuracy"])
    history = model.fit(
        distribute_on_host(strategy, source), epochs=2, steps_per_epoch=4, shuffle=False, verbose=0
    )
    assert len(history.history["loss"]) == 2
    assert all(np.isfinite(history.history["loss"]))


class _SeveralDevices:
    """A strategy whose worker has two devices (a GPU host): TensorFlow's path is kept."""

    class extended:  # named as in tf.distribute
        worker_devices = ("/gpu:0", "/gpu:1")

    def __init__(self):
        self.calls = []

    def experimental_distribute_dataset(self, dataset, options=None):
        self.calls.append(options)
        return dataset


def test_a_worker_with_several_devices_keeps_the_multi_device_iterator():
    from mnist_pipeline.training.keras_compat import distribute_on_host

    strategy = _SeveralDevices()
    assert distribute_on_host(strategy, "dataset") == "dataset"
    assert strategy.calls == [None]


def test_versions_outside_the_supported_range_fail_with_the_range():
    import pytest

    from mnist_pipeline.training import keras_compat

    keras_compat.check_supported()  # the installed stack
    keras_compat.check_supported("3.15.1", "2.16.1")  # the Databricks 15.4 LTS ML lock
    keras_compat.check_supported("3.15.1", "2.21.0")
    for keras_version, tf_version, named in (
        ("3.2.1", "2.16.1", "keras 3.2.1"),  # the runtime's own: uint32 seeds, see the module
        ("3.16.0", "2.21.0", "keras 3.16.0"),
        ("3.15.1", "2.15.0", "tensorflow 2.15.0"),
        ("3.15.1", "2.22.0rc0", "tensorflow 2.22.0rc0"),
    ):
        with pytest.raises(keras_compat.UnsupportedVersionError, match=named) as error:
            keras_compat.check_supported(keras_version, tf_version)
        assert "Keras 3.5-3.15 with TensorFlow 2.16-2.21" in str(error.value)
