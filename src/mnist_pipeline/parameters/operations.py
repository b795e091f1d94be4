"""pydantic models of the production side's parameters.

``batch_scoring`` (parameters_batch_scoring.yml), ``monitoring`` and ``drift_reference``
(parameters_monitoring.yml), ``deploy_model``, ``deploy_validation``, ``deploy_environment``
and ``serving`` (parameters_deploy.yml), ``inference_log`` (parameters_inference_log.yml);
registered in :data:`mnist_pipeline.parameters.SCHEMAS`. ``kedro serve`` runs no pipeline, so
it checks ``serving`` and ``inference_log`` itself (:func:`mnist_pipeline.parameters.check`).
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import Field

from mnist_pipeline.parameters.schemas import Strict

PositiveInt = Annotated[int, Field(ge=1)]
NonNegativeInt = Annotated[int, Field(ge=0)]
Psi = Annotated[float, Field(gt=0)]
Positive = Annotated[float, Field(gt=0)]
Seconds = Positive
Text = Annotated[str, Field(min_length=1)]


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


class DeployModel(Strict):
    registry_uri: Text
    name: Text
    alias: Text


class DeployValidation(Strict):
    num_images: PositiveInt
    seed: int
    min_accuracy: Annotated[float, Field(ge=0.0, le=1.0)]
    atol: Annotated[float, Field(ge=0)]
    request_batch_size: PositiveInt
    latency_requests: NonNegativeInt
    max_latency_p50_ms: Positive | None = None  # null: no latency gate
    startup_timeout_s: Seconds


class DeployEnvironment(Strict):
    enabled: bool
    env_manager: Literal["uv", "virtualenv", "conda"]
    env_root: str | None = None
    build_if_missing: bool
    num_images: PositiveInt


class Serving(Strict):
    """``serving``: the fields of :class:`mnist_pipeline.serving.server.ServerSettings`."""

    host: Text
    port: Annotated[int, Field(ge=0, le=65535)]  # 0: any free port
    max_request_bytes: PositiveInt
    max_batch_size: PositiveInt
    max_batch_images: PositiveInt
    intra_op_threads: NonNegativeInt
    inter_op_threads: NonNegativeInt
    max_json_depth: PositiveInt
    header_timeout_s: Seconds
    body_timeout_s: Seconds
    max_header_bytes: PositiveInt
    allow_unauthenticated: bool


class InferenceLog(Strict):
    path: str  # empty: no log
    pixels_sample_rate: Annotated[float, Field(ge=0.0, le=1.0)]
    max_bytes: PositiveInt
