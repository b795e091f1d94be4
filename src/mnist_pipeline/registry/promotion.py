"""Promote a sandbox version into the production registry: copy, tag, verify, then alias.

The order is the safety: both registries are checked (distinct, reachable) before anything
moves, even the sandbox alias; the production alias moves only after the copy has been loaded
from production and has predicted exactly what the sandbox version predicts on a sample of test
images. Any failure before that leaves the alias where it was. Promoting the same source
version again finds its copy by lineage tag and creates no new production version; two
promotions racing each other settle on the lowest-numbered copy
(:func:`~mnist_pipeline.registry.store.settle_duplicates`), so the registries stay idempotent
without a lock shared between machines.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

from mnist_pipeline.redaction import redact
from mnist_pipeline.registry import store
from mnist_pipeline.registry.config import RegistryConfigError, Workspace


def lineage_tags(source: Workspace, candidate: Mapping[str, Any]) -> dict[str, str]:
    """Tags that say where a production version came from (no credentials: URIs redacted)."""
    tags = {
        store.TAG_SOURCE_KEY: store.source_key(source, candidate["version"]),
        "lineage.source_registry_uri": redact(source.registry_uri),
        "lineage.source_tracking_uri": redact(source.tracking_uri),
        "lineage.source_model_name": source.model_name,
        "lineage.source_version": str(candidate["version"]),
        "lineage.source_run_id": str(candidate.get("run_id") or ""),
        "lineage.model_sha256": str(candidate.get("model_sha256") or ""),
    }
    for key, value in (candidate.get("tags") or {}).items():
        tags[f"lineage.{key}"] = redact(str(value))
    for key, value in (candidate.get("metrics") or {}).items():
        tags[f"{store.METRIC_PREFIX}{key}"] = f"{float(value):.6f}"
    return tags


def check_distinct(source: Workspace, target: Workspace) -> None:
    """Refuse to promote a registry into itself (e.g. the lifecycle run with ``--env gcp``)."""
    if source.registry_uri == target.registry_uri:
        raise RegistryConfigError(
            f"the sandbox and production registries are the same ({redact(target.registry_uri)}"
            "): promotion copies between two workspaces; point promotion.production "
            "(MLFLOW_PRODUCTION_*) at the production registry, or run it from the sandbox env"
        )


def verify_copy(
    source: Workspace,
    source_version: str,
    target: Workspace,
    target_version: str,
    *,
    images: np.ndarray,
    atol: float,
) -> dict[str, Any]:
    """Load both versions with pyfunc, each from its own registry, and compare predictions.

    Raises:
        CopyMismatchError: shapes differ or any probability differs by more than ``atol``.
    """
    expected = store.predict(source, source_version, images)
    actual = store.predict(target, target_version, images)
    if expected.shape != actual.shape:
        raise store.CopyMismatchError(
            f"production {target.model_name} v{target_version} answers shape {actual.shape}, "
            f"the sandbox version {source_version} {expected.shape}; production alias not moved"
        )
    max_diff = float(np.max(np.abs(expected - actual))) if expected.size else 0.0
    same_labels = bool(np.array_equal(expected.argmax(axis=1), actual.argmax(axis=1)))
    if max_diff > atol or not same_labels:
        raise store.CopyMismatchError(
            f"production {target.model_name} v{target_version} predicts differently from the "
            f"sandbox version {source_version} on {len(images)} test images (max |Δp| "
            f"{max_diff:.3g} > {atol:g} or labels differ); production alias not moved"
        )
    return {"images": len(images), "max_abs_diff": max_diff, "atol": atol, "labels_equal": True}


def promote(
    source: Workspace,
    target: Workspace,
    candidate: Mapping[str, Any],
    sample_images: np.ndarray,
    atol: float = 1e-6,
) -> dict[str, Any]:
    """Check both registries, set the sandbox alias on ``candidate``, copy it to ``target``,
    verify the copy, then move the production alias.

    The one home of the promotion's checks: the node only calls this.

    Returns:
        A report: ``candidate_version`` (the sandbox version judged and promoted), ``action``
        (``copied``, ``verified_existing_copy``, ``alias_moved`` — an earlier verified copy
        reused — or ``noop``), the production version, the alias before and after, the
        verification.

    Raises:
        RegistryUnreachableError: the production (or sandbox) registry did not answer.
        CopyMismatchError: the copy does not predict like the source.
    """
    source_version = str(candidate["version"])
    check_distinct(source, target)
    source_client = store.check_reachable(source)
    client = store.check_reachable(target)
    store.set_alias(source_client, source.model_name, source.alias, source_version)
    before = store.alias_version(client, target.model_name, target.alias)
    report: dict[str, Any] = {
        "candidate_version": source_version,
        "source": {**source.describe(), "version": source_version},
        "target": target.describe(),
        "alias_before": None if before is None else str(before.version),
    }
    key = store.source_key(source, source_version)
    copy = store.find_copy(client, target, key)
    if copy is not None and copy.tags.get(store.TAG_VERIFIED) == "true":
        if before is not None and str(before.version) == str(copy.version):
            return {
                **report,
                "action": "noop",
                "version": str(copy.version),
                "alias_after": str(copy.version),
                "message": f"{target.model_name}@{target.alias} already is v{copy.version}, "
                f"the verified copy of sandbox v{source_version}: nothing to do",
            }
        action = "alias_moved"
        verification = {"reused_verified_copy": True}
    else:
        action = "copied" if copy is None else "verified_existing_copy"
        if copy is None:
            copy = store.copy_version(
                source, source_version, target, lineage_tags(source, candidate)
            )
        verification = verify_copy(
            source, source_version, target, str(copy.version), images=sample_images, atol=atol
        )
        store.set_version_tag(client, target.model_name, copy.version, store.TAG_VERIFIED, "true")
    store.set_alias(client, target.model_name, target.alias, str(copy.version))
    return {
        **report,
        "action": action,
        "version": str(copy.version),
        "alias_after": str(copy.version),
        "verification": verification,
        "message": f"{target.model_name}@{target.alias} → v{copy.version} "
        f"(sandbox v{source_version}, {action})",
    }
