"""Where the served model comes from: ``models:/<name>@<alias>`` in the production registry.

The one place that knows how a promoted model is stored in MLflow. It accepts both
ways the promotion can store it, and hands back the Keras model itself:

* the native Keras flavor (``mlflow.keras.log_model``), loaded with ``mlflow.keras``;
* a pyfunc wrapper around the Keras model (``mlflow.pyfunc`` ``PythonModel``), unwrapped
  with ``unwrap_python_model()`` and then ``get_raw_model()`` or the wrapper's attribute
  that holds a ``keras.Model``.

Either way the Keras model honours the trained-model contract: float32 (N, 28, 28, 1)
pixel values 0–255 in, (N, 10) softmax probabilities out.
"""

from __future__ import annotations

import contextlib
import tempfile
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from mnist_pipeline.registry.config import redact_uri


class ModelResolutionError(RuntimeError):
    """The registry, the registered model or its alias could not be found or read."""


class ModelLoadError(RuntimeError):
    """The registered model's files are not a Keras model of the expected contract."""


@dataclass(frozen=True)
class ModelReference:
    """One registered model version, pinned (an alias can move; a version cannot).

    Attributes:
        name: registered model name.
        alias: the alias it was resolved from (``production``).
        version: the registered version the alias pointed at.
        registry_uri: the registry, with any password removed.
        source: where the version's files live (as the registry reports it).
        run_id: the run that logged it, if any.
    """

    name: str
    alias: str
    version: str
    registry_uri: str
    source: str = ""
    run_id: str | None = None

    @property
    def model_uri(self) -> str:
        """``models:/<name>/<version>``: the pinned URI to load and serve."""
        return f"models:/{self.name}/{self.version}"

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "model_uri": self.model_uri}


@contextlib.contextmanager
def registry(uri: str | None) -> Iterator[None]:
    """Point MLflow's tracking and registry at ``uri`` for a block, then restore both.

    MLflow resolves ``models:/`` URIs through process-wide settings; restoring them
    keeps a Kedro run's own tracking (kedro-mlflow) untouched.
    """
    import mlflow

    if not uri:
        yield
        return
    tracking_before, registry_before = mlflow.get_tracking_uri(), mlflow.get_registry_uri()
    mlflow.set_tracking_uri(uri)
    mlflow.set_registry_uri(uri)
    try:
        yield
    finally:
        mlflow.set_tracking_uri(tracking_before)
        mlflow.set_registry_uri(registry_before)


def resolve_model(name: str, alias: str, registry_uri: str) -> ModelReference:
    """Find the version that ``models:/<name>@<alias>`` points at in ``registry_uri``.

    Raises:
        ModelResolutionError: the registry cannot be reached, the model does not
            exist, or no version carries the alias.
    """
    from mlflow import MlflowClient
    from mlflow.exceptions import MlflowException

    shown = redact_uri(registry_uri)
    client = MlflowClient(tracking_uri=registry_uri, registry_uri=registry_uri)
    try:
        version = client.get_model_version_by_alias(name, alias)
    except MlflowException as exc:
        raise ModelResolutionError(
            f"cannot resolve models:/{name}@{alias} in the registry {shown}: "
            f"{_first_line(exc)}. Is the model promoted (registered with alias {alias!r})?"
        ) from exc
    except Exception as exc:  # connection errors, unreadable stores
        raise ModelResolutionError(
            f"cannot read the registry {shown} to resolve models:/{name}@{alias}: "
            f"{type(exc).__name__}: {_first_line(exc)}"
        ) from exc
    return ModelReference(
        name=name,
        alias=alias,
        version=str(version.version),
        registry_uri=shown,
        source=str(version.source or ""),
        run_id=version.run_id,
    )


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
    import mlflow

    with tempfile.TemporaryDirectory(prefix="mnist-serving-") as tmp:
        try:
            with registry(registry_uri):
                local = mlflow.artifacts.download_artifacts(artifact_uri=model_uri, dst_path=tmp)
        except Exception as exc:
            raise ModelResolutionError(
                f"cannot download {model_uri} from the registry {redact_uri(registry_uri or '')}: "
                f"{type(exc).__name__}: {_first_line(exc)}"
            ) from exc
        return _keras_model_from_folder(Path(local), model_uri)


def _keras_model_from_folder(folder: Path, model_uri: str) -> Any:
    import keras
    import mlflow
    from mlflow.models import Model

    try:
        flavors = Model.load(str(folder)).flavors
    except Exception as exc:
        raise ModelLoadError(
            f"{model_uri} is not an MLflow model (no readable MLmodel): {exc}"
        ) from exc
    if "keras" in flavors:
        model = mlflow.keras.load_model(str(folder))
    elif "python_function" in flavors:
        wrapper = mlflow.pyfunc.load_model(str(folder))
        model = _unwrap_keras(wrapper, keras)
        if model is None:
            raise ModelLoadError(
                f"{model_uri} is a pyfunc model without a Keras model inside: expected a "
                "PythonModel with get_raw_model() or an attribute holding a keras.Model"
            )
    else:
        raise ModelLoadError(
            f"{model_uri} has flavors {sorted(flavors)}; expected 'keras' or 'python_function'"
        )
    if not isinstance(model, keras.Model):
        raise ModelLoadError(f"{model_uri} holds a {type(model).__name__}, not a keras.Model")
    check_model_contract(model, model_uri)
    return model


def _unwrap_keras(wrapper: Any, keras: Any) -> Any:
    candidates: list[Any] = []
    with contextlib.suppress(Exception):
        candidates.append(wrapper.get_raw_model())
    with contextlib.suppress(Exception):
        python_model = wrapper.unwrap_python_model()
        candidates.append(python_model)
        if hasattr(python_model, "get_raw_model"):
            with contextlib.suppress(Exception):
                candidates.append(python_model.get_raw_model())
        candidates.extend(vars(python_model).values())
    for candidate in candidates:
        if isinstance(candidate, keras.Model):
            return candidate
    return None


def check_model_contract(model: Any, model_uri: str) -> None:
    """Refuse a model whose input/output shapes are not (N, 28, 28, 1) → (N, 10)."""
    input_shape = tuple(model.inputs[0].shape[1:]) if model.inputs else None
    output_shape = tuple(model.outputs[0].shape[1:]) if model.outputs else None
    if input_shape != (28, 28, 1) or output_shape != (10,):
        raise ModelLoadError(
            f"{model_uri}: expected a model taking (N, 28, 28, 1) images and returning (N, 10) "
            f"probabilities, found input {input_shape} and output {output_shape}"
        )


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__
