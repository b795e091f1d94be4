"""The logged model's definition: signature, Unity Catalog's check, type hints, one contract."""

from __future__ import annotations

import ast
import importlib.metadata
import runpy
import warnings
from pathlib import Path

import numpy as np
import pytest
from mlflow.exceptions import MlflowException
from mlflow.models import Model, ModelSignature
from mlflow.store._unity_catalog.registry.rest_store import UcModelRegistryStore
from mlflow.types import Schema, TensorSpec

from mnist_pipeline import image_contract
from mnist_pipeline.registry import model


def _unity_catalog_check(tmp_path: Path, signature: ModelSignature | None) -> None:
    """Run the check MLflow's Unity Catalog store applies before it registers a model."""
    tmp_path.mkdir(parents=True, exist_ok=True)
    Model(signature=signature).save(str(tmp_path / "MLmodel"))
    store = UcModelRegistryStore.__new__(UcModelRegistryStore)  # the check needs no workspace
    store._validate_model_signature(str(tmp_path))


def test_the_signature_declares_input_and_output_tensors() -> None:
    signature = model.signature()
    (inputs,) = signature.inputs.inputs
    (outputs,) = signature.outputs.inputs
    assert (inputs.type, inputs.shape) == (np.dtype(np.float32), (-1, 28, 28))
    assert (outputs.type, outputs.shape) == (np.dtype(np.float32), (-1, 10))
    assert not signature.inputs.has_input_names()  # DataFrame bodies: any one column name


def test_unity_catalog_accepts_the_signature(tmp_path: Path) -> None:
    _unity_catalog_check(tmp_path / "full", model.signature())
    # The check is real: it refuses a model without a signature or without outputs.
    with pytest.raises(MlflowException, match="did not contain any signature"):
        _unity_catalog_check(tmp_path / "none", None)
    inputs_only = ModelSignature(inputs=Schema([TensorSpec(np.dtype(np.float32), (-1, 28, 28))]))
    with pytest.raises(MlflowException, match="includes only inputs"):
        _unity_catalog_check(tmp_path / "inputs-only", inputs_only)


def test_the_pyfunc_code_imports_nothing_of_the_project() -> None:
    for path in (model.PYFUNC_MODEL_FILE, model.CONTRACT_FILE):
        tree = ast.parse(path.read_text())
        imported = {
            alias.name.split(".")[0]
            for node in ast.walk(tree)
            if isinstance(node, ast.Import)
            for alias in node.names
        } | {
            node.module.split(".")[0]
            for node in ast.walk(tree)
            if isinstance(node, ast.ImportFrom) and node.module and node.level == 0
        }
        # Only the fallback for imports from the source tree may name the project.
        allowed_fallback = path == model.PYFUNC_MODEL_FILE
        assert ("mnist_pipeline" in imported) == allowed_fallback, path
        # model.pip_requirements(), as modules (tensorflow-cpu installs ``tensorflow``)
        requirements = {"numpy", "mlflow", "keras", "pandas", "tensorflow"}
        standard = {"__future__", "typing", "sys"}
        extra = {"image_contract", "mnist_pipeline"} if allowed_fallback else set()
        assert imported <= requirements | standard | extra, imported


def test_mlflow_infers_no_schema_from_the_predict_type_hints() -> None:
    """np.ndarray hints: no "Add type hints" warning and no schema that would replace ours."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        namespace = runpy.run_path(str(model.PYFUNC_MODEL_FILE))
    messages = [str(w.message) for w in caught]
    assert not [m for m in messages if "type hint" in m.lower()], messages
    classifier = namespace["MnistClassifier"]()
    assert classifier.predict_type_hints.input is np.ndarray
    assert namespace["KERAS_ARTIFACT"] == model.KERAS_ARTIFACT


def test_requirements_are_pinned_to_this_environment() -> None:
    pins = dict(line.split("==") for line in model.pip_requirements())
    installed = [d for d in model.TENSORFLOW_DISTRIBUTIONS if _installed(d)]
    assert set(pins) == set(model.REQUIREMENTS) | {installed[0]}
    assert all(version[0].isdigit() for version in pins.values())


def _installed(name: str) -> bool:
    try:
        importlib.metadata.version(name)
    except importlib.metadata.PackageNotFoundError:
        return False
    return True


@pytest.mark.parametrize("distribution", model.TENSORFLOW_DISTRIBUTIONS)
def test_the_requirements_name_the_installed_tensorflow_distribution(distribution, monkeypatch):
    """`tensorflow` on a Databricks ML runtime, `tensorflow-cpu` on the laptop stack: the
    model's requirements name whichever is installed, so its serving environment gets it."""

    def version(name: str) -> str:
        if name == distribution:
            return "2.16.1"
        if name in model.TENSORFLOW_DISTRIBUTIONS:
            raise importlib.metadata.PackageNotFoundError(name)
        return "1.0"

    monkeypatch.setattr(model, "version", version)
    pins = model.pip_requirements()
    assert pins[0] == f"{distribution}==2.16.1"
    assert [p.split("==")[0] for p in pins[1:]] == list(model.REQUIREMENTS)


def test_no_tensorflow_distribution_is_a_clear_error(monkeypatch):
    def version(name: str) -> str:
        raise importlib.metadata.PackageNotFoundError(name)

    monkeypatch.setattr(model, "version", version)
    with pytest.raises(model.TensorFlowNotInstalledError, match="tensorflow, tensorflow-cpu"):
        model.pip_requirements()


def test_the_signature_input_form_of_every_accepted_shape() -> None:
    image = (np.arange(784).reshape(28, 28) % 256).astype(np.uint8)
    for images in (image, image[None], image[None, ..., None], image.tolist()):
        batch = model.as_signature_input(images)
        assert batch.dtype == np.float32 and batch.shape == (1, 28, 28)
        np.testing.assert_array_equal(batch[0], image)
    with pytest.raises(image_contract.ImageContractError, match=r"found \(1, 28, 27\)"):
        model.as_signature_input(np.zeros((1, 28, 27)))


def test_the_logged_pyfunc_refuses_an_image_scaled_to_0_1_like_kedro_serve() -> None:
    """The pyfunc (``mlflow models serve``, Model Serving) applies the same contract rule."""
    from mnist_pipeline.serving.contract import RequestError, images_from_request

    namespace = runpy.run_path(str(model.PYFUNC_MODEL_FILE))
    classifier = namespace["MnistClassifier"]()

    class Keras:
        def __call__(self, batch, training=False):
            return np.full((len(batch), 10), 0.1, np.float32)

    classifier.keras_model = Keras()
    scaled = np.zeros((1, 28, 28), np.float32)
    scaled[0, 6:22, 12:16] = 0.8
    with pytest.raises(MlflowException, match=r"looks scaled to \[0, 1\].*0-255") as pyfunc:
        classifier.predict(None, scaled)
    with pytest.raises(RequestError, match=r"looks scaled to \[0, 1\].*0-255") as served:
        images_from_request({"instances": scaled.tolist()}, max_batch=8)
    assert served.value.status == 400
    assert str(served.value).endswith(pyfunc.value.message)  # one rule, one message
    assert classifier.predict(None, scaled * 255).shape == (1, 10)


def test_copies_of_the_model_predict_without_a_retracing_warning(
    tiny_model, mnist_slices, caplog, monkeypatch
) -> None:
    """A promotion loads several copies of the model in one process (the candidate, the copy
    it verifies). TensorFlow counts each copy's newly traced predict function against one
    function and warned of "excessive retracing" in every ``kedro run``; the pyfunc's
    prediction is one direct forward pass instead."""
    import keras
    from tensorflow.python.eager.polymorphic_function import polymorphic_function

    # TensorFlow's per-process count, fresh: what earlier tests traced does not count here.
    monkeypatch.setattr(
        polymorphic_function,
        "_frequent_tracing_detector_manager",
        polymorphic_function._FrequentTracingDetectorManager(),
    )
    trained, _ = tiny_model
    images = mnist_slices["test"]["images"][:8].astype(np.float32)
    expected = trained.predict(images[..., None], verbose=0)
    classifier = runpy.run_path(str(model.PYFUNC_MODEL_FILE))["MnistClassifier"]()
    caplog.set_level("WARNING")
    for _ in range(6):
        copy = keras.models.clone_model(trained)
        copy.set_weights(trained.get_weights())
        classifier.keras_model = copy
        np.testing.assert_allclose(classifier.predict(None, images), expected, atol=1e-6)
    assert "retracing" not in caplog.text
