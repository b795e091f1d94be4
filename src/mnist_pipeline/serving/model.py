"""Where the served model comes from: ``models:/<name>@<alias>`` in the production registry.

The served model is the project's own pyfunc (:mod:`mnist_pipeline.registry.model`, logged
self-contained by the promotion): it is loaded with ``mlflow.pyfunc`` and the server takes
the Keras model inside it (``unwrap_python_model().get_raw_model()``), which honours the
trained-model contract: float32 (N, 28, 28, 1) pixel values 0–255 in, (N, 10) softmax
probabilities out. Any other model (another flavor, a model pickled against an earlier
version of this project) is refused with a message that says to re-run the promotion.
MLflow access goes through :mod:`mnist_pipeline.registry`.
"""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any

from mnist_pipeline.redaction import first_line
from mnist_pipeline.registry.model import NotProjectModelError, keras_model_of
from mnist_pipeline.registry.store import download_model


class ModelLoadError(RuntimeError):
    """The registered model's files are not a Keras model of the expected contract."""


def load_keras_model(model_uri: str, registry_uri: str | None = None) -> Any:
    """Download ``model_uri`` from the registry and return the Keras model inside it.

    Args:
        model_uri: ``models:/<name>/<version>``, ``models:/<name>@<alias>``, a
            ``runs:/`` URI or a local model folder.
        registry_uri: the registry (and tracking server) to read it from.

    Raises:
        ModelResolutionError: the model's files cannot be downloaded.
        ModelLoadError: the files hold no Keras model (neither flavor above).
    """
    with tempfile.TemporaryDirectory(prefix="mnist-serving-") as tmp:
        local = download_model(model_uri, Path(tmp), registry_uri)
        return _keras_model_from_folder(local, model_uri)


def predict_with_version(registry_uri: str, model_uri: str, images: Any) -> Any:
    """(N, 10) probabilities of a registered version for uint8/float (N, 28, 28) images,
    from the model loaded as the server loads it (:func:`load_keras_model`): what serving
    sees, e.g. for the drift reference."""
    import numpy as np

    model = load_keras_model(model_uri, registry_uri)
    batch = np.asarray(images, dtype=np.float32).reshape(-1, 28, 28, 1)
    return np.asarray(model.predict(batch, batch_size=512, verbose=0), dtype=np.float32)


def _keras_model_from_folder(folder: Path, model_uri: str) -> Any:
    import tensorflow  # noqa: F401  (before Keras: see mnist_pipeline.training)

    # isort: split
    import keras
    import mlflow
    from mlflow.models import Model

    try:
        flavors = Model.load(str(folder)).flavors
    except Exception as exc:
        raise ModelLoadError(
            f"{model_uri} is not an MLflow model (no readable MLmodel): {exc}"
        ) from exc
    if set(flavors) != {"python_function"}:  # e.g. mlflow.keras adds a 'keras' flavor
        raise ModelLoadError(
            f"{model_uri} has flavors {sorted(flavors)}; expected this project's pyfunc: "
            "re-run the promotion to register it"
        )
    try:
        wrapper = mlflow.pyfunc.load_model(str(folder))
    except Exception as exc:  # e.g. pickled against code this project no longer has
        raise ModelLoadError(
            f"{model_uri} cannot be loaded ({type(exc).__name__}: {first_line(exc)}); a model "
            "registered by an earlier version of this project is not self-contained: re-run "
            "the promotion to register it again"
        ) from exc
    try:
        model = keras_model_of(wrapper, model_uri)
    except NotProjectModelError as exc:
        raise ModelLoadError(str(exc)) from exc
    if not isinstance(model, keras.Model):
        raise ModelLoadError(f"{model_uri} holds a {type(model).__name__}, not a keras.Model")
    check_model_contract(model, model_uri)
    return model


def check_model_contract(model: Any, model_uri: str) -> None:
    """Refuse a model whose input/output shapes are not (N, 28, 28, 1) → (N, 10)."""
    input_shape = tuple(model.inputs[0].shape[1:]) if model.inputs else None
    output_shape = tuple(model.outputs[0].shape[1:]) if model.outputs else None
    if input_shape != (28, 28, 1) or output_shape != (10,):
        raise ModelLoadError(
            f"{model_uri}: expected a model taking (N, 28, 28, 1) images and returning (N, 10) "
            f"probabilities, found input {input_shape} and output {output_shape}"
        )
