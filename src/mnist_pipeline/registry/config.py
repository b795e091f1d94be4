"""Where a workspace's MLflow tracking store and model registry live, from configuration: a
*workspace* is one tracking store + one registry (the sandbox or production); the URIs it accepts
(embedded SQLite, an ``mlflow server``, ``databricks[-uc]`` and secret-scope forms) are listed in
docs/promotion.md. Tokens never appear in these URIs (:func:`mnist_pipeline.redaction.redact`
removes one put there anyway).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

from mnist_pipeline.redaction import redact

DATABRICKS_SCHEMES = ("databricks", "databricks-uc")
_NAME_PART = re.compile(r"^[A-Za-z0-9_\-]+$")
_ALIAS = re.compile(r"^[A-Za-z_][A-Za-z0-9_\-]*$")


class RegistryConfigError(ValueError):
    """A workspace's MLflow configuration that cannot work (says which key and why)."""


def scheme_of(uri: str) -> str:
    """The URI scheme (``sqlite``, ``http``, ``databricks``, ``databricks-uc``, ``file``...)."""
    if uri in DATABRICKS_SCHEMES:
        return uri
    return urlparse(uri).scheme or "file"


def is_unity_catalog(registry_uri: str) -> bool:
    return scheme_of(registry_uri) == "databricks-uc"


def validate_databricks_uri(uri: str, key: str) -> None:
    """Accept ``databricks``, ``databricks://<profile>``, ``databricks://<scope>:<prefix>``
    (and the same with ``databricks-uc``); refuse anything else with a clear message.
    """
    scheme = scheme_of(uri)
    if scheme not in DATABRICKS_SCHEMES or uri == scheme:
        return
    rest = uri[len(scheme) + 3 :] if uri.startswith(f"{scheme}://") else None
    parts = (rest or "").split(":")
    if rest is None or not rest or len(parts) > 2 or not all(_NAME_PART.match(p) for p in parts):
        raise RegistryConfigError(
            f"{key}: {uri!r} is not a Databricks URI; expected '{scheme}', "
            f"'{scheme}://<profile>' or '{scheme}://<secret-scope>:<key-prefix>'"
        )


def validate_model_name(name: str, registry_uri: str, key: str) -> None:
    """Unity Catalog names are ``<catalog>.<schema>.<model>``; workspace registries' one part."""
    if not name or not isinstance(name, str):
        raise RegistryConfigError(f"{key}: the registered model name is empty")
    parts = name.split(".")
    if is_unity_catalog(registry_uri):
        if len(parts) != 3 or not all(_NAME_PART.match(p) for p in parts):
            raise RegistryConfigError(
                f"{key}: Unity Catalog ({registry_uri!r}) needs a three-level model name "
                f"'<catalog>.<schema>.<model>', got {name!r}"
            )
    elif len(parts) == 3 and scheme_of(registry_uri) == "databricks":
        raise RegistryConfigError(
            f"{key}: {name!r} is a three-level (Unity Catalog) name but the registry is "
            f"{registry_uri!r}; use 'databricks-uc' as registry URI or a one-part name"
        )


def local_store_path(uri: str | None, project_path: Path | None = None) -> Path | None:
    """The file of an embedded ``sqlite:///`` store (relative paths: from ``project_path``)."""
    if not uri or not uri.startswith("sqlite:///"):
        return None
    path = Path(uri[len("sqlite:///") :])
    if not path.is_absolute():
        path = (project_path or Path.cwd()) / path
    return path


def absolute_store_uri(uri: str, project_path: Path | None = None) -> str:
    """``sqlite:///relative.db`` → ``sqlite:////abs/relative.db`` (from ``project_path``).

    MLflow caches a store per URI string: a relative SQLite URI would keep pointing at the
    file of the folder it was first opened from. Other URIs are returned unchanged.
    """
    path = local_store_path(uri, project_path)
    return uri if path is None else f"sqlite:///{path.resolve()}"


def ensure_local_store(uri: str | None, project_path: Path | None = None) -> None:
    """Create the folder of an embedded SQLite store (SQLite does not create folders)."""
    path = local_store_path(uri, project_path)
    if path is not None:
        path.parent.mkdir(parents=True, exist_ok=True)


def default_artifact_location(tracking_uri: str, project_path: Path | None = None) -> str | None:
    """Artifacts of an embedded store go beside it (``x.db`` → ``x-artifacts/``), as a file URI.

    Any other store (a server, Databricks) keeps its own default: ``None``.
    """
    path = local_store_path(tracking_uri, project_path)
    if path is None:
        return None
    return (path.parent / f"{path.stem}-artifacts").resolve().as_uri()


def check_workspace(label: str, config: Mapping[str, Any]) -> None:
    """Refuse a workspace's parameters that cannot work; every key named as ``<label>.<key>``.

    Beyond what a schema says of each value: the URI forms Databricks accepts, no file store
    (mlflow 3 refuses it), Unity Catalog as a registry only and with three-level names, a
    valid alias, a workspace path as a Databricks experiment.

    Raises:
        RegistryConfigError: the first problem found.
    """
    tracking_uri = str(config["tracking_uri"]).strip()
    registry_uri = str(config.get("registry_uri") or tracking_uri).strip()
    for key, uri in (("tracking_uri", tracking_uri), ("registry_uri", registry_uri)):
        validate_databricks_uri(uri, f"{label}.{key}")
        if scheme_of(uri) == "file":
            raise RegistryConfigError(
                f"{label}.{key}: {uri!r} is a file store, which mlflow 3 refuses; use "
                "'sqlite:///<path>.db', an http(s) server or a Databricks URI"
            )
    if is_unity_catalog(tracking_uri):
        raise RegistryConfigError(
            f"{label}.tracking_uri: 'databricks-uc' is a registry URI; track to "
            "'databricks' (or 'databricks://<profile>') and set registry_uri to it"
        )
    validate_model_name(str(config["model_name"]).strip(), registry_uri, f"{label}.model_name")
    alias = str(config["alias"]).strip()
    if not _ALIAS.match(alias) or alias.lower() == "latest":
        raise RegistryConfigError(
            f"{label}.alias: {alias!r} is not a valid alias (letters, digits, _ and -, "
            "not starting with a digit, not 'latest')"
        )
    experiment = str(config.get("experiment") or Workspace.experiment)
    if scheme_of(tracking_uri) == "databricks" and not experiment.startswith("/"):
        raise RegistryConfigError(
            f"{label}.experiment: Databricks experiment names are workspace paths; "
            f"use e.g. '/Shared/{experiment}', got {experiment!r}"
        )


@dataclass(frozen=True)
class Workspace:
    """One MLflow tracking store + registry, and the model name and alias used there.

    Attributes:
        label: ``sandbox`` or ``production`` (for messages and lineage tags).
        tracking_uri: where runs are logged.
        registry_uri: where models are registered (default: the tracking URI).
        model_name: the registered model name (three-level for Unity Catalog).
        alias: the alias this workspace moves (``champion`` or ``production``).
        experiment: experiment of the runs that hold copied models.
        artifact_location: for a new experiment; ``None``: beside an embedded store, else the
            server's default.
    """

    label: str
    tracking_uri: str
    registry_uri: str
    model_name: str
    alias: str
    experiment: str = "mnist_pipeline_promotions"
    artifact_location: str | None = None

    @classmethod
    def from_config(
        cls, label: str, config: Mapping[str, Any], project_path: Path | None = None
    ) -> Workspace:
        """Build from a parameters block that :func:`check_workspace` accepted (the
        parameters' schema runs it before any node): ``tracking_uri``, ``registry_uri`` (null:
        the tracking URI), ``model_name``, ``alias``, ``experiment``, ``artifact_location``
        (null: see :func:`default_artifact_location`); embedded stores anchored at
        ``project_path``."""
        tracking_uri = config["tracking_uri"]
        registry_uri = config.get("registry_uri") or tracking_uri
        return cls(
            label=label,
            tracking_uri=absolute_store_uri(tracking_uri, project_path),
            registry_uri=absolute_store_uri(registry_uri, project_path),
            model_name=config["model_name"],
            alias=config["alias"],
            experiment=config.get("experiment") or cls.experiment,
            artifact_location=config.get("artifact_location")
            or default_artifact_location(tracking_uri, project_path),
        )

    def describe(self) -> dict[str, str]:
        """What may appear in logs, reports and tags: URIs with any password removed."""
        return {
            "label": self.label,
            "tracking_uri": redact(self.tracking_uri),
            "registry_uri": redact(self.registry_uri),
            "model_name": self.model_name,
            "alias": self.alias,
        }
