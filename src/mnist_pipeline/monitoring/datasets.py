"""Kedro datasets of the monitoring side: where predictions are, and the stored reference."""

from __future__ import annotations

from typing import Any

from kedro.io import AbstractDataset

from mnist_pipeline.redaction import redact
from mnist_pipeline.registry.drift_reference import load_reference, save_reference

from .window import BATCH_SCORES, INFERENCE_LOG, PredictionSource


class PredictionSourceDataset(AbstractDataset[None, PredictionSource]):
    """Loads a :class:`~.window.PredictionSource` (reading happens in the node, for a window).

    Example::

        inference_log:
          type: mnist_pipeline.monitoring.datasets.PredictionSourceDataset
          kind: inference_log            # or batch_scores
          path: data/09_monitoring/inference_log
    """

    def __init__(
        self,
        *,
        path: str,
        kind: str = INFERENCE_LOG,
        credentials: dict[str, Any] | None = None,
        fs_args: dict[str, Any] | None = None,
        metadata: dict[str, Any] | None = None,
    ) -> None:
        if kind not in (INFERENCE_LOG, BATCH_SCORES):
            raise ValueError(f"kind must be {INFERENCE_LOG} or {BATCH_SCORES}, found {kind!r}")
        self._source = PredictionSource(kind, str(path), {**(fs_args or {}), **(credentials or {})})
        self.metadata = metadata

    def _describe(self) -> dict[str, Any]:
        return {"kind": self._source.kind, "path": self._source.path}

    def load(self) -> PredictionSource:
        return self._source

    def save(self, data: None) -> None:
        raise NotImplementedError("predictions are written by the server or the batch job")


class DriftReferenceDataset(AbstractDataset[dict[str, Any], dict[str, Any]]):
    """The drift reference stored with a registered version (:mod:`.registry.drift_reference`).

    ``save`` stores it with the version named in the reference (``model.version``);
    ``load`` reads the reference of the version ``models:/<name>@<alias>`` points at.
    """

    def __init__(
        self, *, registry_uri: str, name: str, alias: str, metadata: dict[str, Any] | None = None
    ) -> None:
        self._registry_uri, self._name, self._alias = str(registry_uri), str(name), str(alias)
        self.metadata = metadata

    def _describe(self) -> dict[str, Any]:
        return {
            "registry_uri": redact(self._registry_uri),
            "model": f"{self._name}@{self._alias}",
        }

    def load(self) -> dict[str, Any]:
        return load_reference(self._registry_uri, self._name, self._alias)

    def save(self, data: dict[str, Any]) -> None:
        if data.get("skipped"):
            return  # not deployable: nothing to store
        model = data["model"]
        save_reference(self._registry_uri, model["name"], str(model["version"]), data)
