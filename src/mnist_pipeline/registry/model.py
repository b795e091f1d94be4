"""The model as it is logged and registered: a self-contained MLflow pyfunc (models-from-code)
that takes (N, 28, 28) float32 images as MNIST stores them (0–255, rescaled inside the model) and
returns (N, 10) probabilities; it carries its code and ``code/image_contract.py`` and loads with
its own pinned requirements (:func:`pip_requirements`). Contract and signature: docs/serving.md
and docs/promotion.md.
"""

from __future__ import annotations

import tempfile
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any

import mlflow
import numpy as np
from mlflow.models import ModelSignature
from mlflow.types import Schema, TensorSpec

from mnist_pipeline import image_contract
from mnist_pipeline.image_contract import IMAGE_SHAPE, INPUT_CONTRACT, NUM_CLASSES, to_model_batch

PYFUNC_MODEL_FILE = Path(__file__).with_name("pyfunc_model.py")
CONTRACT_FILE = Path(image_contract.__file__)
KERAS_ARTIFACT = "keras_model"  # the same name as pyfunc_model.KERAS_ARTIFACT (a test checks)
KERAS_FILENAME = "mnist_cnn.keras"
# How the model is logged; part of the registry's model fingerprint, so a model logged by an
# earlier version of the project (pickled against project code) is never reused as is.
# /2: the contract refuses images scaled to [0, 1] (a version logged with /1 accepts them).
MODEL_FORMAT = "pyfunc-from-code/2"
# The logged model's requirements, pinned to the versions this project runs with (the fresh
# serving environment is built from exactly these: ``make model-env``). TensorFlow is added
# under the name of the distribution that is installed (:func:`tensorflow_requirement`).
REQUIREMENTS = ("mlflow", "keras", "numpy", "pandas")
# The distributions that install the ``tensorflow`` module: Databricks ML runtimes (CPU and
# GPU) and GPU machines have ``tensorflow``, the laptop stack ``tensorflow-cpu``.
TENSORFLOW_DISTRIBUTIONS = ("tensorflow", "tensorflow-cpu")


class TensorFlowNotInstalledError(RuntimeError):
    """No TensorFlow distribution is installed, so the model's requirements cannot name one."""


class NotProjectModelError(RuntimeError):
    """A registered model that is not this project's self-contained pyfunc."""


def signature() -> ModelSignature:
    """Input float32 (-1, 28, 28) pixels 0–255; output float32 (-1, 10) probabilities."""
    return ModelSignature(
        inputs=Schema([TensorSpec(np.dtype(np.float32), (-1, *IMAGE_SHAPE))]),
        outputs=Schema([TensorSpec(np.dtype(np.float32), (-1, NUM_CLASSES))]),
    )


def tensorflow_requirement() -> str:
    """``<distribution>==<version>`` of the installed TensorFlow distribution.

    Raises:
        TensorFlowNotInstalledError: neither ``tensorflow`` nor ``tensorflow-cpu`` is
            installed (a serving environment built without TensorFlow could not load the model).
    """
    for name in TENSORFLOW_DISTRIBUTIONS:
        try:
            return f"{name}=={version(name)}"
        except PackageNotFoundError:
            continue
    raise TensorFlowNotInstalledError(
        f"none of the TensorFlow distributions {', '.join(TENSORFLOW_DISTRIBUTIONS)} is "
        "installed, so the logged model's requirements cannot name one and a serving "
        "environment built from them could not load it: install TensorFlow (a Databricks ML "
        "runtime up to 17.x ships `tensorflow`; elsewhere add it as a library)"
    )


def pip_requirements() -> list[str]:
    """Pinned requirements of the logged model, from this environment (no slow inference):
    TensorFlow under its installed distribution's name, then :data:`REQUIREMENTS`."""
    pins = [tensorflow_requirement()]
    for package in REQUIREMENTS:
        try:
            pins.append(f"{package}=={version(package)}")
        except PackageNotFoundError:
            continue
    return pins


def as_signature_input(images: Any) -> np.ndarray:
    """Images of the contract (any accepted shape or dtype) as float32 (N, 28, 28)."""
    return to_model_batch(images)[..., 0]


def log_classifier(keras_model: Any, input_example: Any, name: str = "model") -> Any:
    """Log ``keras_model`` as the self-contained pyfunc into the *active* run.

    Args:
        keras_model: a Keras model of the trained-model contract (float32 (N, 28, 28, 1)
            0–255 in, (N, 10) probabilities out).
        input_example: a few raw test images (e.g. uint8 (3, 28, 28)).
        name: the logged model's name within the run.

    Returns:
        MLflow's ``ModelInfo`` (``model_uri``, ``run_id``...).
    """
    with tempfile.TemporaryDirectory(prefix="mnist-model-") as tmp:
        keras_path = Path(tmp) / KERAS_FILENAME
        keras_model.save(keras_path)
        return mlflow.pyfunc.log_model(
            name=name,
            python_model=str(PYFUNC_MODEL_FILE),
            code_paths=[str(CONTRACT_FILE)],
            artifacts={KERAS_ARTIFACT: str(keras_path)},
            signature=signature(),
            input_example=as_signature_input(input_example),
            pip_requirements=pip_requirements(),
            metadata={"input_contract": INPUT_CONTRACT},
        )


def load_classifier(model_uri: str) -> Any:
    """``mlflow.pyfunc.load_model`` (the URI is resolved against the current MLflow URIs)."""
    return mlflow.pyfunc.load_model(model_uri)


def predict_images(model: Any, images: Any) -> np.ndarray:
    """(N, 10) float32 probabilities of a loaded pyfunc for images of the contract.

    Accepts every shape and dtype of the contract (uint8, (N, 28, 28, 1)...) and hands
    the pyfunc the signature's float32 (N, 28, 28).
    """
    return np.asarray(model.predict(as_signature_input(images)), dtype=np.float32)


def keras_model_of(model: Any, model_uri: str) -> Any:
    """The Keras model inside this project's pyfunc (for servers that call Keras directly).

    Raises:
        NotProjectModelError: ``model`` is not this project's pyfunc.
    """
    try:
        python_model = model.unwrap_python_model()
    except Exception as exc:
        raise NotProjectModelError(
            f"{model_uri} is not a python_function model logged by this project "
            f"(registry.model.log_classifier): {exc}"
        ) from exc
    get_raw = getattr(python_model, "get_raw_model", None)
    if get_raw is None:
        raise NotProjectModelError(
            f"{model_uri} holds a {type(python_model).__name__}, not this project's "
            "MnistClassifier: re-run the promotion to register the model again"
        )
    return get_raw()
