"""The training input pipeline (training/worker.py)."""

from __future__ import annotations

import numpy as np

from mnist_pipeline.training.worker import input_batches


def test_the_input_pipeline_is_not_autotuned():
    """tf.data's autotuning thread holds up the deletion of its iterator until it next wakes
    (41 s, 82 s... after the iterator was created): with it, every epoch of 20-40 s lasted
    41 s, because Keras deletes the validation iterator at each epoch's end."""
    images = np.zeros((10, 28, 28, 1), np.float32)
    for seed in (0, None):  # training (shuffled) and validation
        dataset = input_batches(images, np.arange(10) % 10, 4, seed=seed)
        assert dataset.options().autotune.enabled is False
        batches = iter(dataset)
        for _ in range(5):  # endless full batches (fit bounds it with a step count)
            x, y = next(batches)
            assert x.shape == (4, 28, 28, 1) and y.shape == (4,)
