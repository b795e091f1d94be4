from __future__ import annotations

import itertools
import subprocess
import sys

import numpy as np
import pytest

from mnist_pipeline.training.model import (
    RandomShift,
    SmoothedSparseCrossentropy,
    build_core_model,
    build_loss,
    build_optimizer,
    compile_model,
    learning_rate_at,
    learning_rate_schedule,
    training_model,
    with_preprocessing,
)
from tests.training.conftest import base_training_params


def test_default_model_from_parameters_maps_images_to_ten_probabilities():
    params = base_training_params()
    model = build_core_model(params["model"])
    assert model.input_shape == (None, 28, 28, 1)
    out = model.predict(np.random.default_rng(0).random((3, 28, 28, 1), np.float32), verbose=0)
    assert out.shape == (3, 10)
    np.testing.assert_allclose(out.sum(axis=1), 1.0, rtol=1e-5)


def test_with_preprocessing_takes_0_255_and_copies_the_core_weights():
    core = build_core_model(base_training_params()["model"])
    trained = with_preprocessing(core)
    assert trained.layers[1].name == "rescale_0_255"
    images = np.random.default_rng(1).integers(0, 256, (4, 28, 28, 1)).astype(np.float32)
    np.testing.assert_allclose(
        trained.predict(images, verbose=0), core.predict(images / 255.0, verbose=0), atol=1e-6
    )
    assert not {id(w) for w in core.weights} & {id(w) for w in trained.weights}


def test_the_trained_model_loads_without_the_project(tmp_path):
    """A compiled core (the project's WarmupCosine schedule and smoothed loss) leaves
    training without its optimizer and loss: a process that cannot import mnist_pipeline
    loads the saved model."""
    params = base_training_params()
    core = build_core_model(params["model"])
    optimizer = {**params["optimizer"], "schedule": "cosine"}
    loss = {"label_smoothing": 0.1}
    compile_model(core, optimizer, total_steps=10, steps_per_epoch=5, loss_spec=loss)
    images = np.random.default_rng(2).integers(0, 256, (2, 28, 28, 1)).astype(np.float32)
    core.fit(images / 255.0, np.array([1, 2]), epochs=1, verbose=0)
    path = tmp_path / "trained.keras"
    with_preprocessing(core).save(path)
    script = (
        "import sys, importlib.abc\n"
        "class Block(importlib.abc.MetaPathFinder):\n"
        "    def find_spec(self, name, path=None, target=None):\n"
        "        if name.split('.')[0] == 'mnist_pipeline':\n"
        "            raise ModuleNotFoundError(name)\n"
        "sys.meta_path.insert(0, Block())\n"
        "import keras\n"
        f"keras.saving.load_model({str(path)!r}, compile=False)\n"
        "print('loaded')\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=300, check=False
    )
    assert done.returncode == 0 and "loaded" in done.stdout, done.stderr[-2000:]


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ({"conv_blocks": []}, "conv_blocks must be a non-empty list"),
        ({"conv_blocks": [{"filters": 8}]}, r"conv_blocks\[0\] must be"),
        ({"conv_blocks": [{"filters": "x", "kernel_size": 3}]}, r"conv_blocks\[0\] must be"),
    ],
)
def test_malformed_model_spec_names_the_key(spec, message):
    with pytest.raises(ValueError, match=message):
        build_core_model(spec)


def test_unknown_optimizer_and_schedule_are_refused():
    with pytest.raises(ValueError, match=r"optimizer\.name must be one of"):
        build_optimizer({"name": "adagrad", "learning_rate": 0.1})
    with pytest.raises(ValueError, match="schedule must be one of"):
        learning_rate_at(0, 3, {"learning_rate": 0.1, "schedule": "step"})


def test_cosine_schedule_warms_up_then_decays_to_the_floor():
    spec = {"learning_rate": 0.004, "schedule": "cosine", "warmup_fraction": 0.1}
    rates = [learning_rate_at(step, 100, spec) for step in range(100)]
    assert rates[0] == pytest.approx(0.004 / 10)  # linear warm-up over 10 steps
    assert rates[9] == pytest.approx(0.004)
    assert all(a < b for a, b in itertools.pairwise(rates[:10]))
    assert all(a > b for a, b in itertools.pairwise(rates[10:]))
    assert 0 < rates[-1] < 0.0001
    assert learning_rate_at(50, 100, {"learning_rate": 0.01}) == 0.01


def test_the_optimizer_follows_the_schedule_step_by_step():
    spec = {"learning_rate": 0.004, "schedule": "cosine", "warmup_fraction": 0.2}
    schedule = learning_rate_schedule(spec, 50)
    for step in (0, 5, 9, 10, 30, 49):
        expected = learning_rate_at(step, 50, spec)
        assert float(schedule(step)) == pytest.approx(expected, rel=1e-4, abs=1e-7)
    assert learning_rate_schedule({"learning_rate": 0.01, "schedule": "constant"}, 50) == 0.01


CYCLES = {
    "learning_rate": 0.008,
    "schedule": "cosine",
    "warmup_fraction": 0.1,
    "cycle_epochs": 1,
    "restart_peak_factor": 0.5,
}


def test_cosine_cycles_restart_every_epoch_at_a_lower_peak():
    """Epochs of 20 steps, 2.5 epochs: three cycles, the last one 10 steps long."""
    rates = [learning_rate_at(step, 50, CYCLES, steps_per_epoch=20) for step in range(50)]
    assert rates[0] == pytest.approx(0.008 / 2)  # the first cycle's warm-up: 2 steps
    assert rates[1] == pytest.approx(0.008)
    assert rates[20] == pytest.approx(0.004 / 2) and rates[21] == pytest.approx(0.004)
    assert rates[40] == pytest.approx(0.002)  # the short last cycle: a 1-step warm-up
    for start, end in ((2, 20), (22, 40), (41, 50)):  # each decays to the end of its epoch
        assert all(a > b for a, b in itertools.pairwise(rates[start:end]))
        assert 0 < rates[end - 1] < 0.0001
    assert learning_rate_at(80, 50, CYCLES, steps_per_epoch=20) == rates[-1]  # past the end
    with pytest.raises(ValueError, match="cycle_epochs needs the run's steps per epoch"):
        learning_rate_at(0, 50, CYCLES)


def test_one_cycle_is_the_whole_run_when_cycle_epochs_is_zero():
    spec = {**CYCLES, "cycle_epochs": 0}
    whole = [learning_rate_at(step, 50, spec, steps_per_epoch=20) for step in range(50)]
    assert whole == [
        learning_rate_at(step, 50, {**spec, "restart_peak_factor": 1}) for step in range(50)
    ]
    assert max(whole) == whole[4] == pytest.approx(0.008)  # one warm-up: 5 steps of 50


def test_the_defaults_first_epoch_is_a_one_epoch_run():
    """The accuracy guard trains the default 1 epoch (test_cloud_lifecycle.py) to guard the
    default's first epoch: the same learning rates, step by step."""
    spec = base_training_params()["optimizer"]
    epochs = base_training_params()["epochs"]
    one = [learning_rate_at(step, 30, spec, steps_per_epoch=30) for step in range(30)]
    default = [learning_rate_at(step, epochs * 30, spec, steps_per_epoch=30) for step in range(30)]
    assert epochs > 1 and one == default


def test_the_optimizer_follows_the_cycles_step_by_step():
    schedule = learning_rate_schedule(CYCLES, 50, steps_per_epoch=20)
    for step in (0, 1, 10, 19, 20, 21, 35, 39, 40, 41, 49, 60):
        expected = learning_rate_at(step, 50, CYCLES, steps_per_epoch=20)
        assert float(schedule(step)) == pytest.approx(expected, rel=1e-4, abs=1e-7)


def test_label_smoothing_is_cross_entropy_against_smoothed_one_hot_targets():
    import keras

    labels = np.array([3, 0, 9])
    probabilities = np.random.default_rng(4).dirichlet(np.ones(10), 3).astype(np.float32)
    smoothed = SmoothedSparseCrossentropy(0.1)(labels, probabilities)
    targets = np.full((3, 10), 0.01, np.float32)
    targets[np.arange(3), labels] = 0.91
    expected = -(targets * np.log(probabilities)).sum(axis=1).mean()
    assert float(smoothed) == pytest.approx(expected, rel=1e-5)
    assert build_loss({"label_smoothing": 0.0}) == build_loss(None)
    assert build_loss(None) == "sparse_categorical_crossentropy"
    assert isinstance(build_loss({"label_smoothing": 0.1}), keras.losses.Loss)
    with pytest.raises(ValueError, match=r"label_smoothing must be in \[0, 1\)"):
        build_loss({"label_smoothing": 1.0})


def test_random_shift_moves_training_images_by_whole_pixels_only_in_training():
    images = np.zeros((16, 28, 28, 1), np.float32)
    images[:, 10:12, 10:12, 0] = 1.0
    layer = RandomShift(2, seed=3)
    shifted = np.asarray(layer(images, training=True))
    assert shifted.sum(axis=(1, 2, 3)) == pytest.approx(np.full(16, 4.0))  # nothing lost
    for image in shifted[..., 0]:
        rows, cols = np.nonzero(image)
        assert -2 <= rows.min() - 10 <= 2 and -2 <= cols.min() - 10 <= 2
    assert len({tuple(np.argwhere(image[..., 0])[0]) for image in shifted}) > 1
    np.testing.assert_array_equal(np.asarray(layer(images, training=False)), images)


def test_augmentation_wraps_the_core_model_and_never_leaves_training():
    spec = {**base_training_params()["model"], "augment": {"max_shift": 2}}
    core = build_core_model(spec)
    trained = training_model(core, spec)
    assert trained.layers[0].name == "shift" and trained.layers[1] is core
    assert "shift" not in [layer.name for layer in with_preprocessing(core).layers]
    assert training_model(core, {"augment": {"max_shift": 0}}) is core


def test_strided_first_layer_without_pooling():
    spec = {
        "conv_blocks": [
            {"filters": 8, "kernel_size": 5, "strides": 2, "pool": False},
            {"filters": 8, "kernel_size": 3},
        ],
        "batch_norm": False,
    }
    model = build_core_model(spec)
    assert model.get_layer("conv0").output.shape == (None, 12, 12, 8)
    assert "pool0" not in [layer.name for layer in model.layers]
