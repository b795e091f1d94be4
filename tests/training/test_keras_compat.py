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
