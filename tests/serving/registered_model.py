"""A real, small promoted model for the serving, client and deploy tests.

A Keras model of the trained-model contract (float32 (N, 28, 28, 1) values 0–255 in,
Rescaling(1/255) first, (N, 10) softmax out), trained one epoch on a slice of real
MNIST so its accuracy is real, logged by the project's own logging function
(``registry.model.log_classifier``: the self-contained pyfunc) and registered with the
alias ``production`` in a SQLite MLflow store. Trained once per test run (the pytest-xdist
workers share the saved model) and registered once per session (a module cache: several
test folders' fixtures share it).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from tests.conftest import built_once, read_mnist_split
from tests.mlflow_stores import empty_store

MODEL_NAME = "mnist_cnn"
ALIAS = "production"
TRAIN_IMAGES = 12_000

_CACHE: dict[str, Any] = {}


@dataclass(frozen=True)
class RegisteredModel:
    """Where the registered model is and the test split it is checked on."""

    registry_uri: str
    name: str
    alias: str
    version: str
    test_images: np.ndarray  # uint8 (10000, 28, 28)
    test_labels: np.ndarray  # uint8 (10000,)
    root: Path

    @property
    def model_uri(self) -> str:
        return f"models:/{self.name}@{self.alias}"


def build_model():
    """A small CNN with the trained-model contract (preprocessing inside)."""
    import keras

    keras.utils.set_random_seed(0)
    model = keras.Sequential(
        [
            keras.Input(shape=(28, 28, 1)),
            keras.layers.Rescaling(1 / 255),
            keras.layers.Conv2D(16, 3, activation="relu"),
            keras.layers.MaxPooling2D(),
            keras.layers.Conv2D(32, 3, activation="relu"),
            keras.layers.MaxPooling2D(),
            keras.layers.Flatten(),
            keras.layers.Dense(10, activation="softmax"),
        ]
    )
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    return model


def sqlite_registry(root: Path) -> tuple[str, str]:
    """A SQLite store URI under ``root`` and an artifact location beside it."""
    root.mkdir(parents=True, exist_ok=True)
    return empty_store(root / "production.db"), (root / "artifacts").as_uri()


def register(
    model,
    uri: str,
    artifact_location: str | None = None,
    *,
    name: str = MODEL_NAME,
    input_example: np.ndarray | None = None,
    alias: str = ALIAS,
) -> str:
    """Log ``model`` as the project logs it into the registry at ``uri``, alias it; its version."""
    import mlflow
    from mlflow import MlflowClient

    from mnist_pipeline.registry.model import log_classifier
    from mnist_pipeline.registry.store import uris

    client = MlflowClient(tracking_uri=uri, registry_uri=uri)
    experiment = client.get_experiment_by_name("promotion")
    experiment_id = (
        experiment.experiment_id
        if experiment
        else client.create_experiment("promotion", artifact_location=artifact_location)
    )
    with uris(uri), mlflow.start_run(experiment_id=experiment_id):
        example = input_example if input_example is not None else np.zeros((1, 28, 28), np.uint8)
        info = log_classifier(model, example)
        version = mlflow.register_model(info.model_uri, name)
    client.set_registered_model_alias(name, alias, version.version)
    return str(version.version)


def _trained_model(folder: Path, mnist_dir: Path) -> None:
    """Train the model one epoch and save it as ``folder/model.keras``."""
    train = read_mnist_split(mnist_dir, "train", count=TRAIN_IMAGES)
    model = build_model()
    model.fit(
        train["images"][..., None].astype(np.float32),
        train["labels"],
        epochs=1,
        batch_size=128,
        verbose=0,
    )
    model.save(folder / "model.keras")


def registered_model(tmp_path_factory, mnist_dir: Path) -> RegisteredModel:
    """The session's registered model: trained once per test run (the pytest-xdist workers
    share the saved model), registered in this process's own SQLite store on first use."""
    if "model" not in _CACHE:
        import keras

        trained = built_once(
            tmp_path_factory, "registered-model", lambda folder: _trained_model(folder, mnist_dir)
        )
        model = keras.saving.load_model(trained / "model.keras")
        test = read_mnist_split(mnist_dir, "t10k")
        root = tmp_path_factory.getbasetemp() / "registered-model"
        uri, artifacts = sqlite_registry(root)
        version = register(model, uri, artifacts, input_example=test["images"][:3])
        _CACHE["model"] = RegisteredModel(
            registry_uri=uri,
            name=MODEL_NAME,
            alias=ALIAS,
            version=version,
            test_images=test["images"],
            test_labels=test["labels"],
            root=root,
        )
    return _CACHE["model"]


def shared_server(model: RegisteredModel) -> Any:
    """One real model server (``python -m mnist_pipeline.serving``) for the whole session."""
    from mnist_pipeline.serving import ServerProcess, ServerSettings

    server = _CACHE.get("server")
    if server is None or not server.is_healthy():
        settings = ServerSettings(port=0, max_request_bytes=1_000_000, max_batch_size=64)
        server = ServerProcess(
            model.model_uri, model.registry_uri, settings, workdir=model.root / "server"
        )
        (model.root / "server").mkdir(parents=True, exist_ok=True)
        _CACHE["server"] = server.start()
    return server


def stop_shared_server() -> None:
    server = _CACHE.pop("server", None)
    if server is not None:
        server.stop()
