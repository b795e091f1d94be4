"""The logged model's code: an MLflow pyfunc around the Keras model (models-from-code).

MLflow copies **this file** into every logged model (``python_model=<this file>``) and runs it
to load the model; ``code/image_contract.py`` travels beside it. So the registered model loads
and predicts with nothing but its own requirements (MLflow, TensorFlow, Keras, NumPy), in an
environment that does not have this project installed: ``mlflow models serve``, Databricks
Model Serving, ``mlflow models build-docker`` or a Spark UDF. Nothing here is pickled, and this
file imports nothing of the project (a test loads the model where ``mnist_pipeline`` cannot be
imported).

The contract (``image_contract.INPUT_CONTRACT``): MNIST-convention images in — 28 × 28
grayscale, pixel values 0–255 — and (N, 10) float32 class probabilities out. The signature
declares float32 (-1, 28, 28); the Keras model rescales inside (``Rescaling(1/255)``).
"""

from __future__ import annotations

import sys
from typing import Any

import mlflow
import numpy as np
from mlflow.exceptions import MlflowException
from mlflow.protos.databricks_pb2 import INVALID_PARAMETER_VALUE

try:  # inside the logged model: MLflow puts its code/ folder (image_contract.py) on sys.path
    from image_contract import ImageContractError, images_from_model_input, to_model_batch
except ImportError:  # imported from the project's source tree
    from mnist_pipeline.image_contract import (
        ImageContractError,
        images_from_model_input,
        to_model_batch,
    )

KERAS_ARTIFACT = "keras_model"


class InputContractViolation(MlflowException):
    """Input that breaks the image contract: HTTP 400 with the contract message alone.

    MLflow's scoring server rewrites a failed prediction's message into
    ``Failed to predict data '<the whole input>'. Error: ...`` (kilobytes for one image);
    this exception keeps its own short message.
    """

    def __init__(self, message: str) -> None:
        self._contract_message = message
        super().__init__(message, error_code=INVALID_PARAMETER_VALUE)

    @property
    def message(self) -> str:  # type: ignore[override]
        return self._contract_message

    @message.setter
    def message(self, value: str) -> None:
        """Ignore the scoring server's rewrite (it would echo the whole input)."""


def _compact_echo_in_scoring_server() -> None:
    """Keep MLflow's own schema errors short where its scoring server echoes the input.

    A request of the wrong shape is refused by MLflow's signature check before ``predict``
    runs, and the scoring server puts ``str(input)`` into the message twice. Inside that
    server process only, NumPy and pandas print such input as a summary.
    """
    if "mlflow.pyfunc.scoring_server" not in sys.modules:
        return
    np.set_printoptions(threshold=16, edgeitems=1, linewidth=120)
    try:
        import pandas as pd

        pd.set_option("display.max_rows", 2)
        pd.set_option("display.min_rows", 2)
        pd.set_option("display.max_colwidth", 24)
    except ImportError:  # pragma: no cover - pandas comes with mlflow
        pass


class MnistClassifier(mlflow.pyfunc.PythonModel):
    """MNIST-convention images in, ten class probabilities out."""

    def __init__(self) -> None:
        self.keras_model: Any = None

    def load_context(self, context: mlflow.pyfunc.PythonModelContext) -> None:
        import tensorflow  # noqa: F401  (before Keras: see mnist_pipeline.training)

        # isort: split
        import keras

        _compact_echo_in_scoring_server()
        self.keras_model = keras.saving.load_model(context.artifacts[KERAS_ARTIFACT], compile=False)

    def get_raw_model(self) -> Any:
        """The Keras model: float32 (N, 28, 28, 1) values 0–255 → (N, 10) probabilities."""
        return self.keras_model

    # np.ndarray: a hint from which MLflow infers no schema (the explicit signature stays).
    def predict(
        self, context: Any, model_input: np.ndarray, params: dict[str, Any] | None = None
    ) -> np.ndarray:
        try:
            batch = to_model_batch(images_from_model_input(model_input))
        except ImageContractError as exc:
            raise InputContractViolation(str(exc)) from exc
        # One forward pass, called directly: predict_on_batch would trace a tf.function for
        # each loaded copy, and a process that loads several (the promotion's check of the
        # copy against its source) trips TensorFlow's "excessive retracing" warning.
        return np.asarray(self.keras_model(batch, training=False), dtype=np.float32)


mlflow.models.set_model(MnistClassifier())
