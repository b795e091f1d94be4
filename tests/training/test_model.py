from __future__ import annotations

import itertools

import numpy as np
import pytest

from mnist_pipeline.training.model import (
    build_core_model,
    build_optimizer,
    learning_rate_at,
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


def test_with_preprocessing_takes_0_255_and_shares_the_core_weights():
    core = build_core_model(base_training_params()["model"])
    trained = with_preprocessing(core)
    assert trained.layers[1].name == "rescale_0_255"
    images = np.random.default_rng(1).integers(0, 256, (4, 28, 28, 1)).astype(np.float32)
    np.testing.assert_allclose(
        trained.predict(images, verbose=0), core.predict(images / 255.0, verbose=0), atol=1e-6
    )
    assert {id(w) for w in core.weights} <= {id(w) for w in trained.weights}


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
    with pytest.raises(ValueError, match="schedule must be"):
        learning_rate_at(0, 3, {"learning_rate": 0.1, "schedule": "step"})


def test_cosine_schedule_decays_from_base_to_floor():
    spec = {"learning_rate": 0.004, "schedule": "cosine", "final_learning_rate": 0.0}
    rates = [learning_rate_at(epoch, 4, spec) for epoch in range(4)]
    assert rates[0] == pytest.approx(0.004)
    assert all(a > b for a, b in itertools.pairwise(rates))
    assert rates[-1] > 0
    assert learning_rate_at(2, 4, {"learning_rate": 0.01}) == 0.01
