"""The drift reference stored with a registered model version (the MLflow side of monitoring).

The reference (:func:`mnist_pipeline.monitoring.drift.build_reference`) is a JSON artifact
of the version's run in the production registry, ``drift_reference/version-<n>.json``, and
the version carries the tag ``drift_reference`` naming it: whoever resolves
``models:/<name>@production`` finds the reference of exactly that version.
"""

from __future__ import annotations

import json
import tempfile
from pathlib import Path
from typing import Any

from mnist_pipeline.redaction import redact
from mnist_pipeline.registry.store import alias_version

TAG = "drift_reference"


class DriftReferenceError(LookupError):
    """The version has no stored reference, or it cannot be stored or read."""


def _client(registry_uri: str):
    from mlflow import MlflowClient

    return MlflowClient(tracking_uri=registry_uri, registry_uri=registry_uri)


def save_reference(registry_uri: str, name: str, version: str, reference: dict[str, Any]) -> str:
    """Store ``reference`` with ``models:/<name>/<version>``; the artifact path."""
    client = _client(registry_uri)
    model_version = client.get_model_version(name, str(version))
    if not model_version.run_id:
        raise DriftReferenceError(
            f"models:/{name}/{version} in {redact(registry_uri)} has no run to store the "
            "drift reference with (it was registered from a path, not a run)"
        )
    artifact = f"{TAG}/version-{version}.json"
    client.log_dict(model_version.run_id, reference, artifact)
    client.set_model_version_tag(name, str(version), TAG, artifact)
    return artifact


def load_reference(registry_uri: str, name: str, alias: str) -> dict[str, Any]:
    """The reference of the version ``models:/<name>@<alias>`` points at.

    Raises:
        DriftReferenceError: the alias is missing, or its version has no reference.
    """
    shown = redact(registry_uri)
    client = _client(registry_uri)
    model_version = alias_version(client, name, alias)
    if model_version is None:
        raise DriftReferenceError(
            f"cannot resolve models:/{name}@{alias} in {shown}: no such registered model or alias"
        )
    artifact = (model_version.tags or {}).get(TAG)
    if not artifact:
        raise DriftReferenceError(
            f"models:/{name}/{model_version.version} (@{alias}) has no drift reference in "
            f"{shown}: it is computed when the version is deployed; run "
            "`kedro run --env gcp --pipelines deploy`"
        )
    with tempfile.TemporaryDirectory(prefix="drift-reference-") as tmp:
        local = client.download_artifacts(model_version.run_id, artifact, tmp)
        reference = json.loads(Path(local).read_text())
    reference.setdefault("model", {"name": name, "version": str(model_version.version)})
    return reference
