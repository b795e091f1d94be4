"""pydantic models of the production-operations parameters (ops helper's stages).

``batch_scoring`` (parameters_batch_scoring.yml), ``monitoring`` and ``drift_reference``
(parameters_monitoring.yml); registered in :data:`mnist_pipeline.parameters.SCHEMAS`.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import Field

from mnist_pipeline.parameters.schemas import Strict

PositiveInt = Annotated[int, Field(ge=1)]
Psi = Annotated[float, Field(gt=0)]


class ScoringInput(Strict):
    path: Annotated[str, Field(min_length=1)]
    kind: Literal["auto", "images", "shards"] = "auto"
    storage_options: dict[str, Any] = Field(default_factory=dict)


class ScoringOutput(Strict):
    path: Annotated[str, Field(min_length=1)]
    storage_options: dict[str, Any] = Field(default_factory=dict)


class BatchScoring(Strict):
    input: ScoringInput
    output: ScoringOutput
    batch_size: PositiveInt
    images_per_partition: PositiveInt


class DriftThresholds(Strict):
    predicted_class: Psi
    probability: Psi
    mean_intensity: Psi
    ink_fraction: Psi
    bbox_height: Psi
    bbox_width: Psi


class Monitoring(Strict):
    source: Literal["inference_log", "batch_scores"]
    window: Annotated[int, Field(ge=1000)]
    thresholds: DriftThresholds
    fail_on_drift: bool


class DriftReference(Strict):
    num_images: PositiveInt
    seed: int
    bins: Annotated[int, Field(ge=2, le=100)]
