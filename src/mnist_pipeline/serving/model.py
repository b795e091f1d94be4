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

import contextlib
import tempfile
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from mnist_pipeline.redaction import redact


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
    if not uri:
        yield
        return
    from mnist_pipeline.registry.store import uris

    with uris(uri):
        yield


def resolve_model(name: str, alias: str, registry_uri: str) -> ModelReference:
    """Find the version that ``models:/<name>@<alias>`` points at in ``registry_uri``.

    Raises:
        ModelResolutionError: the registry cannot be reached, the model does not
            exist, or no version carries the alias.
    """
    from mlflow import MlflowClient
    from mlflow.exceptions import MlflowException

    from mnist_pipeline.registry import probe

    shown = redact(registry_uri)
    timeout_s, retries = probe.settings()
    try:  # the reachability probe: bounded retries and timeout (not the artifact download)
        client = MlflowClient(tracking_uri=registry_uri, registry_uri=registry_uri)
        with probe.bounded():
            client.search_registered_models(max_results=1)
    except Exception as exc:  # a garbage URI, a closed port, a server that never answers
        raise ModelResolutionError(
            f"the registry {shown} is unreachable ({retries + 1} attempts, {timeout_s} s "
            f"timeout each): {type(exc).__name__}: {redact(_first_line(exc))}"
        ) from None  # MLflow's own message may hold the URI's password
    try:
        with probe.bounded():
            version = client.get_model_version_by_alias(name, alias)
    except MlflowException as exc:
        raise ModelResolutionError(
            f"cannot resolve models:/{name}@{alias} in the registry {shown}: "
            f"{redact(_first_line(exc))}. Is the model promoted (registered with alias "
            f"{alias!r})?"
        ) from None
    except Exception as exc:  # connection errors, unreadable stores
        raise ModelResolutionError(
            f"cannot read the registry {shown} to resolve models:/{name}@{alias}: "
            f"{type(exc).__name__}: {redact(_first_line(exc))}"
        ) from None
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
    with tempfile.TemporaryDirectory(prefix="mnist-serving-") as tmp:
        local = download_model(model_uri, registry_uri, Path(tmp))
        return _keras_model_from_folder(local, model_uri)


def download_model(model_uri: str, registry_uri: str | None, dst: Path) -> Path:
    """Download ``model_uri`` from the registry into ``dst``; the local model folder.

    Raises:
        ModelResolutionError: the model's files cannot be downloaded.
    """
    import mlflow

    try:
        with registry(registry_uri):
            local = mlflow.artifacts.download_artifacts(artifact_uri=model_uri, dst_path=str(dst))
    except Exception as exc:
        raise ModelResolutionError(
            f"cannot download {model_uri} from the registry {redact(registry_uri or '')}: "
            f"{type(exc).__name__}: {_first_line(exc)}"
        ) from exc
    return Path(local)


def _keras_model_from_folder(folder: Path, model_uri: str) -> Any:
    import tensorflow  # noqa: F401  (before Keras: see mnist_pipeline.training)

    # isort: split
    import keras
    import mlflow
    from mlflow.models import Model

    from mnist_pipeline.registry.model import NotProjectModelError, keras_model_of

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
            f"{model_uri} cannot be loaded ({type(exc).__name__}: {_first_line(exc)}); a model "
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


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__
