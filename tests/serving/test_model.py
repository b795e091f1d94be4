"""Loading the promoted model (the project's pyfunc) from a real MLflow registry (SQLite store)."""

from __future__ import annotations

import keras
import mlflow
import numpy as np
import pytest

from mnist_pipeline.redaction import redact
from mnist_pipeline.registry.store import ModelResolutionError, resolve_alias, uris
from mnist_pipeline.serving.model import ModelLoadError, check_model_contract, load_keras_model
from tests.serving.registered_model import RegisteredModel


class NotTheProjectsModel(mlflow.pyfunc.PythonModel):
    def predict(self, context, model_input: np.ndarray, params=None) -> np.ndarray:
        return model_input


def _log_pyfunc(registered: RegisteredModel, name: str, python_model, artifacts=None) -> str:
    with uris(registered.registry_uri):
        experiment = mlflow.get_experiment_by_name("promotion")
        with mlflow.start_run(experiment_id=experiment.experiment_id):
            info = mlflow.pyfunc.log_model(
                name="model",
                python_model=python_model,
                artifacts=artifacts,
                pip_requirements=["mlflow"],  # skip the slow requirement inference
            )
            version = mlflow.register_model(info.model_uri, name)
    return f"models:/{name}/{version.version}"


@pytest.fixture(scope="module")
def keras_model(registered: RegisteredModel):
    return load_keras_model(registered.model_uri, registered.registry_uri)


def test_alias_resolves_to_a_pinned_version(registered: RegisteredModel) -> None:
    reference = resolve_alias(registered.name, registered.alias, registered.registry_uri)
    assert reference.version == registered.version
    assert reference.model_uri == f"models:/{registered.name}/{registered.version}"
    assert reference.run_id


def test_the_projects_pyfunc_yields_a_keras_model_of_the_contract(keras_model, registered) -> None:
    images = registered.test_images[:500, ..., None].astype(np.float32)
    probabilities = keras_model.predict(images, verbose=0)
    assert probabilities.shape == (500, 10)
    np.testing.assert_allclose(probabilities.sum(axis=1), 1, rtol=1e-5)
    accuracy = (probabilities.argmax(axis=1) == registered.test_labels[:500]).mean()
    assert accuracy > 0.8  # trained on real MNIST: far above chance (0.1)


def test_another_pyfunc_is_refused_with_the_way_out(registered) -> None:
    uri = _log_pyfunc(registered, "mnist_not_ours", NotTheProjectsModel())
    with pytest.raises(ModelLoadError, match=r"not this project's MnistClassifier.*promotion"):
        load_keras_model(uri, registered.registry_uri)


def test_a_plain_keras_flavor_model_is_refused(keras_model, registered) -> None:
    with uris(registered.registry_uri):
        experiment = mlflow.get_experiment_by_name("promotion")
        with mlflow.start_run(experiment_id=experiment.experiment_id):
            info = mlflow.keras.log_model(keras_model, name="model", pip_requirements=["mlflow"])
            version = mlflow.register_model(info.model_uri, "mnist_keras_flavor")
    with pytest.raises(ModelLoadError, match="expected this project's pyfunc"):
        load_keras_model(f"models:/mnist_keras_flavor/{version.version}", registered.registry_uri)


def test_missing_alias_names_model_alias_and_registry(registered) -> None:
    with pytest.raises(ModelResolutionError) as caught:
        resolve_alias(registered.name, "champion", registered.registry_uri)
    message = str(caught.value)
    assert f"models:/{registered.name}@champion" in message
    assert registered.registry_uri in message
    assert "promoted" in message


def test_missing_model_version_cannot_be_downloaded(registered) -> None:
    with pytest.raises(ModelResolutionError, match="cannot download models:/mnist_cnn/99"):
        load_keras_model("models:/mnist_cnn/99", registered.registry_uri)


def test_unreachable_registry_is_named(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "0")
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_TIMEOUT", "5")
    uri = "http://127.0.0.1:9/"  # discard port: nothing listens
    with pytest.raises(ModelResolutionError, match=r"127\.0\.0\.1:9"):
        resolve_alias("mnist_cnn", "production", uri)


def test_model_of_another_contract_is_refused() -> None:
    layers = [keras.Input((32, 32, 3)), keras.layers.Flatten(), keras.layers.Dense(10)]
    model = keras.Sequential(layers)
    with pytest.raises(ModelLoadError, match=r"found input \(32, 32, 3\)"):
        check_model_contract(model, "models:/other/1")


def test_passwords_never_reach_messages() -> None:
    assert redact("https://me:s3cret@host/x") == "https://me:***@host/x"
    assert redact("sqlite:///a.db") == "sqlite:///a.db"
