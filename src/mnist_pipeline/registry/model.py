"""The model as it is logged and registered: a small MLflow pyfunc around the Keras model.

**The contract** (see ``docs/promotion.md``): ``mlflow.pyfunc.load_model(uri).predict(images)``
takes images as MNIST stores them — 28 × 28 grayscale, pixel values 0–255 (uint8, int or
float), shape (28, 28), (N, 28, 28) or (N, 28, 28, 1), a NumPy array or nested lists — and
returns a float32 NumPy array (N, 10) of class probabilities. No caller ever rescales:
:func:`mnist_pipeline.image_contract.to_model_batch` validates the input and the Keras model
rescales inside (its first layer is ``Rescaling(1/255)``).

Why a pyfunc and not the plain Keras flavor: MLflow enforces a tensor signature's rank, so a
Keras model logged with a (-1, 28, 28, 1) signature refuses (N, 28, 28) — the layout MNIST
itself uses. The pyfunc's signature therefore declares the output tensor only; its input is
described by the input example (three raw test images, uint8 (3, 28, 28)) and enforced by
``to_model_batch``, whose errors name what was expected and what was found.

The Keras file travels inside the logged model (``artifacts/mnist_cnn.keras``): a server that
wants Keras itself takes ``load_model(uri).unwrap_python_model().keras_model`` (or
``.get_raw_model()``), which honours the trained-model contract (float32 (N, 28, 28, 1),
0–255 in; (N, 10) probabilities out).
"""

from __future__ import annotations

import tempfile
import warnings
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any

import mlflow
import numpy as np
from mlflow.models import ModelSignature
from mlflow.types import Schema, TensorSpec

from mnist_pipeline.image_contract import ImageContractError, to_model_batch

KERAS_ARTIFACT = "keras_model"
KERAS_FILENAME = "mnist_cnn.keras"
NUM_CLASSES = 10
INPUT_CONTRACT = (
    "MNIST-convention images: 28x28 grayscale, pixel values 0-255, shape (28, 28), "
    "(N, 28, 28) or (N, 28, 28, 1); output: (N, 10) float32 class probabilities"
)
_REQUIREMENTS = ("mlflow", "tensorflow-cpu", "keras", "numpy")


# MLflow warns at class creation that predict() has no type hints; hints would replace the
# contract's own checks with a list-only schema, so the warning is silenced here only.
with warnings.catch_warnings():
    warnings.filterwarnings("ignore", message=".*type hints", category=UserWarning)

    class MnistClassifier(mlflow.pyfunc.PythonModel):
        """MNIST-convention images in, ten class probabilities out (see the module docstring)."""

        def __init__(self) -> None:
            self.keras_model: Any = None

        def load_context(self, context: mlflow.pyfunc.PythonModelContext) -> None:
            import keras

            self.keras_model = keras.saving.load_model(
                context.artifacts[KERAS_ARTIFACT], compile=False
            )

        def get_raw_model(self) -> Any:
            """The Keras model (float32 (N, 28, 28, 1) values 0–255 → (N, 10) probabilities)."""
            return self.keras_model

        # No type hints here: MLflow would turn them into a (list-only) input schema.
        def predict(self, context, model_input, params=None):
            try:
                batch = to_model_batch(_as_array(model_input))
            except ImageContractError as exc:
                raise mlflow.exceptions.MlflowException.invalid_parameter_value(str(exc)) from exc
            probabilities = self.keras_model.predict_on_batch(batch)
            return np.asarray(probabilities, dtype=np.float32)


def _as_array(model_input: Any) -> Any:
    """A served DataFrame of one column of images (``{"inputs": ...}``) back into an array."""
    import pandas as pd

    if isinstance(model_input, pd.DataFrame):
        if model_input.shape[1] == 1:
            return np.stack([np.asarray(v) for v in model_input.iloc[:, 0]])
        return model_input.to_numpy()
    if isinstance(model_input, dict) and len(model_input) == 1:
        return next(iter(model_input.values()))
    return model_input


def signature() -> ModelSignature:
    """Output-only signature (see the module docstring for why the input is not a schema)."""
    return ModelSignature(outputs=Schema([TensorSpec(np.dtype(np.float32), (-1, NUM_CLASSES))]))


def pip_requirements() -> list[str]:
    """Pinned requirements of the logged model, from this environment (no slow inference)."""
    pins = []
    for package in _REQUIREMENTS:
        try:
            pins.append(f"{package}=={version(package)}")
        except PackageNotFoundError:
            continue
    return pins


def log_classifier(keras_model: Any, input_example: np.ndarray, name: str = "model") -> Any:
    """Log ``keras_model`` as an :class:`MnistClassifier` pyfunc into the *active* run.

    Args:
        keras_model: a Keras model of the trained-model contract.
        input_example: a few raw test images (uint8 (n, 28, 28)).
        name: the logged model's name within the run.

    Returns:
        MLflow's ``ModelInfo`` (``model_uri``, ``run_id``...).
    """
    with tempfile.TemporaryDirectory(prefix="mnist-model-") as tmp, warnings.catch_warnings():
        # MLflow suggests type hints on predict(); they would replace the contract's checks.
        warnings.filterwarnings("ignore", message=".*type hint", category=UserWarning)
        keras_path = Path(tmp) / KERAS_FILENAME
        keras_model.save(keras_path)
        return mlflow.pyfunc.log_model(
            name=name,
            python_model=MnistClassifier(),
            artifacts={KERAS_ARTIFACT: str(keras_path)},
            signature=signature(),
            input_example=np.asarray(input_example),
            pip_requirements=pip_requirements(),
            metadata={"input_contract": INPUT_CONTRACT},
        )


def load_classifier(model_uri: str) -> Any:
    """``mlflow.pyfunc.load_model`` (the URI is resolved against the current MLflow URIs)."""
    return mlflow.pyfunc.load_model(model_uri)
