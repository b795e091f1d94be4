"""The trained model's dataset: kedro-datasets' TensorFlowModelDataset, built on first use."""

from __future__ import annotations

import numpy as np

from mnist_pipeline.datasets import KerasModelDataset


def test_a_model_saved_and_loaded_predicts_the_same(tmp_path):
    import keras

    model = keras.Sequential([keras.Input((3,)), keras.layers.Dense(2, activation="softmax")])
    dataset = KerasModelDataset(filepath=str(tmp_path / "06_models" / "model.keras"))
    assert not dataset.exists()
    dataset.save(model)
    assert dataset.exists()
    inputs = np.ones((4, 3), np.float32)
    np.testing.assert_allclose(
        dataset.load().predict(inputs, verbose=0), model.predict(inputs, verbose=0), rtol=1e-6
    )


def test_its_description_names_no_credential():
    dataset = KerasModelDataset(
        filepath="abfs://container/06_models/model.keras",
        credentials={"account_name": "acct", "account_key": "secret-key"},
    )
    assert "secret-key" not in str(dataset)
    assert "abfs://container/06_models/model.keras" in str(dataset)
