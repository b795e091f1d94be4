"""MLflow registry operations on one workspace: reach it, register, find, copy, load, alias.

Every function takes a :class:`~mnist_pipeline.registry.config.Workspace` (or works on the
workspace of the active run) and talks to MLflow through an explicit ``MlflowClient``; where
MLflow only offers process-wide URIs (``models:/`` resolution), :func:`using` sets them for a
block and restores them, so a Kedro run's own tracking (kedro-mlflow) is left as it was.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import subprocess
import tempfile
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import mlflow
import numpy as np
from mlflow import MlflowClient
from mlflow.entities.model_registry import ModelVersion
from mlflow.exceptions import MlflowException

from mnist_pipeline.redaction import first_line, redact
from mnist_pipeline.registry.config import Workspace, ensure_local_store
from mnist_pipeline.registry.model import (
    MODEL_FORMAT,
    load_classifier,
    log_classifier,
    predict_images,
)
from mnist_pipeline.registry.probe import bounded, settings

logger = logging.getLogger(__name__)

# Tags on registered versions (and on the production run that holds a copy).
TAG_MODEL_SHA256 = "model_sha256"
TAG_SOURCE_KEY = "lineage.source_key"
TAG_VERIFIED = "lineage.verified"
LINEAGE_PREFIX = "lineage."
METRIC_PREFIX = "metric."


class RegistryError(RuntimeError):
    """A registry operation that failed; the message names the workspace and URI."""


class RegistryUnreachableError(RegistryError):
    """The workspace's tracking store or registry did not answer."""


class ModelResolutionError(RegistryError):
    """The registry, the registered model or its alias could not be found or read, or a
    version's files could not be downloaded."""


class CopyMismatchError(RegistryError):
    """The production copy does not predict what the sandbox model predicts."""


@contextlib.contextmanager
def uris(tracking_uri: str, registry_uri: str | None = None) -> Iterator[None]:
    """Point MLflow's process-wide tracking and registry URIs somewhere for a block, then restore.

    The one place in the project that swaps them (``models:/`` URIs resolve through them); a
    Kedro run's own tracking (kedro-mlflow) is left as it was. ``registry_uri`` defaults to
    ``tracking_uri``.
    """
    before = mlflow.get_tracking_uri(), mlflow.get_registry_uri()
    mlflow.set_tracking_uri(tracking_uri)
    mlflow.set_registry_uri(registry_uri or tracking_uri)
    try:
        yield
    finally:
        mlflow.set_tracking_uri(before[0])
        mlflow.set_registry_uri(before[1])


@contextlib.contextmanager
def using(workspace: Workspace) -> Iterator[None]:
    """Point MLflow's process-wide tracking and registry URIs at ``workspace`` for a block."""
    with uris(workspace.tracking_uri, workspace.registry_uri):
        yield


def client_for(workspace: Workspace) -> MlflowClient:
    ensure_local_store(workspace.tracking_uri)
    ensure_local_store(workspace.registry_uri)
    return MlflowClient(tracking_uri=workspace.tracking_uri, registry_uri=workspace.registry_uri)


def check_reachable(workspace: Workspace) -> MlflowClient:
    """Ask the tracking store and the registry one cheap question each, failing fast
    (retries and timeouts bounded by :func:`mnist_pipeline.registry.probe.bounded`).

    Raises:
        RegistryUnreachableError: naming the workspace and its (redacted) URIs.
    """
    try:
        client = client_for(workspace)
    except Exception as exc:  # a URI no MLflow store understands
        raise RegistryUnreachableError(
            f"{workspace.label} tracking store {redact(workspace.tracking_uri)} cannot be "
            f"opened ({type(exc).__name__}: {first_line(exc)}); nothing was changed"
        ) from None
    questions = (
        ("tracking store", workspace.tracking_uri, client.search_experiments),
        ("model registry", workspace.registry_uri, client.search_registered_models),
    )
    with bounded():
        for what, uri, ask in questions:
            try:
                ask(max_results=1)
            except Exception as exc:
                raise RegistryUnreachableError(
                    f"{workspace.label} {what} {redact(uri)} is unreachable "
                    f"({type(exc).__name__}: {first_line(exc)}); nothing was changed"
                ) from None  # MLflow's own message may hold the URI's password
    return client


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


def resolve_alias(name: str, alias: str, registry_uri: str) -> ModelReference:
    """The version ``models:/<name>@<alias>`` points at in ``registry_uri``, pinned.

    The registry is asked one cheap question first (bounded retries and timeout,
    :mod:`.probe`), so an unreachable registry is told apart from a model never promoted.

    Raises:
        ModelResolutionError: the registry cannot be reached, the model does not exist, or
            no version carries the alias.
    """
    shown = redact(registry_uri)
    timeout_s, retries = settings()
    try:
        client = MlflowClient(tracking_uri=registry_uri, registry_uri=registry_uri)
        with bounded():
            client.search_registered_models(max_results=1)
    except Exception as exc:  # a garbage URI, a closed port, a server that never answers
        raise ModelResolutionError(
            f"the registry {shown} is unreachable ({retries + 1} attempts, {timeout_s} s "
            f"timeout each): {type(exc).__name__}: {first_line(exc)}"
        ) from None  # MLflow's own message may hold the URI's password
    try:
        with bounded():
            version = alias_version(client, name, alias)
    except Exception as exc:  # connection errors, unreadable stores
        raise ModelResolutionError(
            f"cannot read the registry {shown} to resolve models:/{name}@{alias}: "
            f"{type(exc).__name__}: {first_line(exc)}"
        ) from None
    if version is None:
        raise ModelResolutionError(
            f"cannot resolve models:/{name}@{alias} in the registry {shown}: no registered "
            f"model {name!r} with alias {alias!r}. Is the model promoted?"
        )
    return ModelReference(
        name=name,
        alias=alias,
        version=str(version.version),
        registry_uri=shown,
        source=str(version.source or ""),
        run_id=version.run_id,
    )


def download_model(
    model_uri: str, dst: Path, registry_uri: str | None, tracking_uri: str | None = None
) -> Path:
    """Download a model's files (its MLflow model folder) into ``dst``; the local folder.

    Args:
        model_uri: ``models:/<name>/<version>``, ``models:/<name>@<alias>``, a ``runs:/``
            URI or a local model folder.
        registry_uri: the registry to read it from (None: MLflow's current one).
        tracking_uri: its tracking store, where it is not the registry (Databricks tracks
            to ``databricks`` and registers in ``databricks-uc``).

    Raises:
        ModelResolutionError: the model's files cannot be downloaded.
    """
    dst.mkdir(parents=True, exist_ok=True)
    pointed = uris(tracking_uri or registry_uri, registry_uri) if registry_uri else None
    try:
        with pointed or contextlib.nullcontext():
            local = mlflow.artifacts.download_artifacts(artifact_uri=model_uri, dst_path=str(dst))
    except Exception as exc:
        raise ModelResolutionError(
            f"cannot download {model_uri} from the registry {redact(registry_uri)}: "
            f"{type(exc).__name__}: {first_line(exc)}"
        ) from exc
    return Path(local)


def keras_fingerprint(keras_model: Any) -> str:
    """SHA-256 of how it is logged, its architecture and weights: the same model, the same hash.

    The logging format (:data:`~mnist_pipeline.registry.model.MODEL_FORMAT`) is part of it, so
    a version logged by an earlier project version (pickled against project code) is never
    reused: promoting again registers the model self-contained.
    """
    digest = hashlib.sha256(f"{MODEL_FORMAT}\n".encode() + keras_model.to_json().encode())
    for weights in keras_model.get_weights():
        array = np.ascontiguousarray(weights)
        digest.update(f"{array.dtype}{array.shape}".encode())
        digest.update(array.tobytes())
    return digest.hexdigest()


def git_commit(project_path: Path | None = None) -> str:
    """The checked-out commit (``+dirty`` when files differ), or ``unknown`` outside git."""
    cwd = project_path or Path.cwd()
    try:
        commit = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=cwd, capture_output=True, text=True, check=True
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no"],
            cwd=cwd,
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"
    return f"{commit}+dirty" if dirty else commit


def _versions(client: MlflowClient, name: str) -> list[ModelVersion]:
    return list(client.search_model_versions(f"name='{name}'"))


def settle_duplicates(
    client: MlflowClient, name: str, mine: ModelVersion, tag: str, value: str
) -> ModelVersion:
    """After creating ``mine``: of all versions tagged ``tag=value`` the lowest wins.

    Two runs (two machines) that race between "look for an existing version" and "create
    one" both create; each then keeps the lowest-numbered one and deletes its own if that
    is a later duplicate. Version numbers only grow, so the lowest is never the one deleted
    and both runs settle on the same version: idempotent in the registry itself, no lock.
    """
    matches = [v for v in _versions(client, name) if v.tags.get(tag) == value]
    winner = min([mine, *matches], key=lambda v: int(v.version))
    if str(winner.version) != str(mine.version):
        client.delete_model_version(name, str(mine.version))
    return winner


# The registered model's description in the MLflow UI (each version's comes with its model card).
MODEL_DESCRIPTION = (
    "MNIST digit classifier (Keras CNN) from the mnist-pipeline Kedro project. Input: images as "
    "MNIST stores them, 28x28 (channel axis optional), pixels 0-255, in any of MLflow's four "
    "request formats (instances, inputs, dataframe_split, dataframe_records); output: ten class "
    "probabilities per image. Registered by the promotion stage after the quality gate; the "
    "'production' alias is moved only to a verified copy. Each version's description is its "
    "model card."
)


def _created(create: Callable[[], Any]) -> None:
    """Run ``create``; one a concurrent run made in between is fine."""
    try:
        create()
    except MlflowException as exc:
        if exc.error_code != "RESOURCE_ALREADY_EXISTS":
            raise


def _ensure_registered_model(client: MlflowClient, name: str) -> None:
    try:
        model = client.get_registered_model(name)
    except MlflowException:
        _created(lambda: client.create_registered_model(name, description=MODEL_DESCRIPTION))
        return
    if not model.description:  # created before the project described it
        client.update_registered_model(name, description=MODEL_DESCRIPTION)


def alias_version(client: MlflowClient, name: str, alias: str) -> ModelVersion | None:
    """The version ``alias`` points at, or ``None`` (no such model or alias)."""
    try:
        return client.get_model_version_by_alias(name, alias)
    except MlflowException:
        return None


def version_metrics(version: ModelVersion) -> dict[str, float]:
    """The metrics recorded as ``metric.<name>`` tags on a registered version."""
    return {
        key[len(METRIC_PREFIX) :]: float(value)
        for key, value in (version.tags or {}).items()
        if key.startswith(METRIC_PREFIX)
    }


def _wait_ready(client: MlflowClient, name: str, version: str, timeout_s: float = 120) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        status = client.get_model_version(name, version).status
        if status == "READY":
            return
        if status == "FAILED_REGISTRATION":
            raise RegistryError(f"registration of {name} version {version} failed")
        time.sleep(0.5)
    raise RegistryError(f"{name} version {version} was not READY after {timeout_s:.0f} s")


def register_candidate(
    keras_model: Any,
    input_example: np.ndarray,
    model_name: str,
    metrics: Mapping[str, float],
    tags: Mapping[str, str],
    *,
    champion_alias: str,
) -> dict[str, Any]:
    """Log the model into the active run and register it in the current registry (the sandbox).

    Idempotent: a version with the same model fingerprint (weights + architecture) is reused,
    so re-running evaluation on the same trained model adds no sandbox version.

    Returns:
        ``{"registry_uri", "tracking_uri", "model_name", "version", "run_id", "model_uri",
        "model_sha256", "metrics", "tags", "reused"}``.
    """
    tracking_uri, registry_uri = mlflow.get_tracking_uri(), mlflow.get_registry_uri()
    workspace = Workspace("sandbox", tracking_uri, registry_uri, model_name, champion_alias)
    client = check_reachable(workspace)
    fingerprint = keras_fingerprint(keras_model)
    _ensure_registered_model(client, model_name)
    existing = [
        v for v in _versions(client, model_name) if v.tags.get(TAG_MODEL_SHA256) == fingerprint
    ]
    version_tags = {
        TAG_MODEL_SHA256: fingerprint,
        **{f"{METRIC_PREFIX}{k}": f"{float(v):.6f}" for k, v in metrics.items()},
        **{k: str(v) for k, v in tags.items()},
    }
    if existing:
        version = min(existing, key=lambda v: int(v.version))
        reused = True
    else:
        started = mlflow.active_run() is None
        run = mlflow.active_run() or mlflow.start_run(run_name="register")
        try:
            mlflow.set_tags({k: v for k, v in tags.items()})
            info = log_classifier(keras_model, input_example)
        finally:
            if started:
                mlflow.end_run()
        version = client.create_model_version(
            model_name,
            source=info.model_uri,
            run_id=run.info.run_id,
            tags=version_tags,
            model_id=info.model_id,
        )
        _wait_ready(client, model_name, version.version)
        winner = settle_duplicates(client, model_name, version, TAG_MODEL_SHA256, fingerprint)
        reused = str(winner.version) != str(version.version)  # a concurrent run's version
        version = winner
    return {
        "tracking_uri": redact(tracking_uri),
        "registry_uri": redact(registry_uri),
        "model_name": model_name,
        "version": str(version.version),
        "run_id": version.run_id,
        "model_uri": f"models:/{model_name}/{version.version}",
        "model_sha256": fingerprint,
        "metrics": {k: float(v) for k, v in metrics.items()},
        "tags": dict(tags),
        "reused": reused,
    }


# How SQL backends word a unique-key violation (SQLite, PostgreSQL, MySQL).
_UNIQUE_VIOLATIONS = ("UNIQUE constraint failed", "duplicate key value", "Duplicate entry")
UPSERT_ATTEMPTS = 3


def _upsert(write: Callable[[], None], what: str) -> None:
    """Run ``write`` (an MLflow alias or tag write), again if it lost an insert race.

    MLflow's SQL registry writes aliases and version tags with a select-then-insert
    (SQLAlchemy's ``merge``), so two jobs writing a *new* one at the same moment make the
    second fail on the table's unique key (seen in CI: two concurrent promotions, ``UNIQUE
    constraint failed: registered_model_aliases``). The row exists by then, so the same
    write again takes the update path: the last writer wins, as for a row that existed.
    """
    for attempt in range(1, UPSERT_ATTEMPTS + 1):
        try:
            write()
            return
        except MlflowException as exc:
            lost_insert_race = any(text in str(exc) for text in _UNIQUE_VIOLATIONS)
            if not lost_insert_race or attempt == UPSERT_ATTEMPTS:
                raise
            logger.info("%s was created by a concurrent job meanwhile; writing it again", what)


def set_alias(client: MlflowClient, name: str, alias: str, version: str) -> None:
    """Point ``name@alias`` at ``version``; safe when another job sets it at the same time."""
    _upsert(
        lambda: client.set_registered_model_alias(name, alias, str(version)),
        f"alias {name}@{alias}",
    )


def set_version_tag(client: MlflowClient, name: str, version: str, key: str, value: str) -> None:
    """Tag ``name`` v``version``; safe when another job sets the same tag at the same time."""
    _upsert(
        lambda: client.set_model_version_tag(name, str(version), key, value),
        f"tag {key} of {name} v{version}",
    )


def source_key(source: Workspace, version: str) -> str:
    """What identifies a source version across registries: registry, name and version."""
    return f"{redact(source.registry_uri)}#{source.model_name}/{version}"


def find_copy(client: MlflowClient, target: Workspace, key: str) -> ModelVersion | None:
    """The target's version copied from the source version ``key`` (by lineage tag), if any."""
    matches = [v for v in _versions(client, target.model_name) if v.tags.get(TAG_SOURCE_KEY) == key]
    return min(matches, key=lambda v: int(v.version)) if matches else None


def _ensure_experiment(client: MlflowClient, target: Workspace) -> str:
    """The id of the target's experiment for copies, created if missing (race-safe)."""
    experiment = client.get_experiment_by_name(target.experiment)
    if experiment is None:
        location = target.artifact_location
        _created(lambda: client.create_experiment(target.experiment, artifact_location=location))
        experiment = client.get_experiment_by_name(target.experiment)
    return experiment.experiment_id


def copy_version(
    source: Workspace, source_version: str, target: Workspace, lineage: Mapping[str, str]
) -> ModelVersion:
    """Copy a registered version across registries that share no storage.

    Downloads the version's files from the source, logs them into a new run of the target's
    ``experiment`` and registers that run's copy (naive cross-registry registration fails:
    the target cannot read the source's storage). ``lineage`` becomes tags of both.
    """
    client = client_for(target)
    with tempfile.TemporaryDirectory(prefix="mnist-promotion-") as tmp:
        local = download_model(
            f"models:/{source.model_name}/{source_version}",
            Path(tmp),
            source.registry_uri,
            source.tracking_uri,
        )
        # The source registry's own bookkeeping names the source model: not part of the copy.
        with contextlib.suppress(FileNotFoundError):
            Path(local, "registered_model_meta").unlink()
        experiment_id = _ensure_experiment(client, target)
        run = client.create_run(
            experiment_id, run_name=f"copy-of-{source.model_name}-v{source_version}", tags=lineage
        )
        try:
            client.log_artifacts(run.info.run_id, str(local), artifact_path="model")
        except Exception:
            client.set_terminated(run.info.run_id, status="FAILED")
            raise
        client.set_terminated(run.info.run_id)
    _ensure_registered_model(client, target.model_name)
    version = client.create_model_version(
        target.model_name,
        # The copy's concrete location in the target's own storage (not a runs:/ indirection).
        source=f"{run.info.artifact_uri.rstrip('/')}/model",
        run_id=run.info.run_id,
        tags={**lineage, TAG_VERIFIED: "false"},
    )
    _wait_ready(client, target.model_name, version.version)
    if TAG_SOURCE_KEY not in lineage:
        return version
    # A concurrent promotion of the same source version may have copied it too.
    return settle_duplicates(
        client, target.model_name, version, TAG_SOURCE_KEY, lineage[TAG_SOURCE_KEY]
    )


def predict(workspace: Workspace, version: str, images: np.ndarray) -> np.ndarray:
    """Load ``models:/<name>/<version>`` from ``workspace`` with pyfunc and predict ``images``."""
    with using(workspace):
        model = load_classifier(f"models:/{workspace.model_name}/{version}")
    return predict_images(model, images)


def current_workspace(model_name: str, alias: str, label: str = "sandbox") -> Workspace:
    """The workspace MLflow is pointed at now (in a Kedro run: the one of ``mlflow.yml``)."""
    return Workspace(label, mlflow.get_tracking_uri(), mlflow.get_registry_uri(), model_name, alias)


def alias_metrics(workspace: Workspace) -> dict[str, Any] | None:
    """``{"version", "metrics"}`` of the version ``workspace.alias`` points at, or ``None``."""
    version = alias_version(client_for(workspace), workspace.model_name, workspace.alias)
    if version is None:
        return None
    return {"version": str(version.version), "metrics": version_metrics(version)}


def tag_active_run(tags: Mapping[str, Any]) -> None:
    """Set tags on the active run, if there is one (a Kedro run with kedro-mlflow)."""
    if mlflow.active_run() is not None:
        mlflow.set_tags({k: str(v)[:5000] for k, v in tags.items()})


def get_version(workspace: Workspace, version: str) -> ModelVersion:
    """The registered version ``version`` of ``workspace.model_name`` (tags, run id...)."""
    return client_for(workspace).get_model_version(workspace.model_name, str(version))


def publish_model_card(
    workspace: Workspace, version: str, markdown: str, artifact_file: str
) -> None:
    """Set ``markdown`` as the version's description and log it into the version's run.

    The description is what the MLflow UI shows on the version's page; the artifact keeps
    each revision of the card beside the model's files (the run that holds the copy).
    """
    client = client_for(workspace)
    model_version = client.update_model_version(
        workspace.model_name, str(version), description=markdown
    )
    if model_version.run_id:
        client.log_text(model_version.run_id, markdown, artifact_file)
