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
    """``serving``: how the model server runs (the fields of
    :class:`mnist_pipeline.serving.server.ServerSettings`, which is this model plus the
    inference log's). The defaults are the YAML's, for a server started from code."""

    host: Text = "127.0.0.1"  # loopback unless exposed on purpose (then a token is required)
    port: Annotated[int, Field(ge=0, le=65535)] = 8501  # 0: any free port
    max_request_bytes: PositiveInt = 8 * 1024 * 1024  # larger bodies get 413
    max_batch_size: PositiveInt = 1024  # images per request; more get 413
    max_batch_images: PositiveInt = 256  # queued requests merged into one model call
    intra_op_threads: NonNegativeInt = 0  # TensorFlow thread pools; 0: TensorFlow's default
    inter_op_threads: NonNegativeInt = 0
    max_json_depth: PositiveInt = 32  # deeper nesting gets 400 before it is decoded
    header_timeout_s: Seconds = 10.0  # first byte to the end of the headers, else 408
    body_timeout_s: Seconds = 20.0  # end of the headers to the end of the body, else 408
    max_header_bytes: PositiveInt = 16 * 1024  # request line and headers; more get 431
    allow_unauthenticated: bool = False  # serve beyond loopback without a token (warned)


class InferenceLog(Strict):
    """``inference_log`` (parameters_inference_log.yml): where the server logs predictions
    (:mod:`mnist_pipeline.serving.inference_log`)."""

    path: str = ""  # a folder or URI; empty: no log
    pixels_sample_rate: Annotated[float, Field(ge=0.0, le=1.0)] = 0.0
    max_bytes: PositiveInt = 512 * 1024 * 1024  # local segments beyond it: oldest deleted
    max_segment_bytes: NonNegativeInt = 0  # rotate beyond it; 0: max_bytes/16 (64 KiB-8 MiB)
    max_segment_age_s: Seconds = 300.0  # rotate an older open segment
    queue_size: PositiveInt = 10_000  # records waiting for the writer; beyond it dropped
    spool_dir: str = ""  # local folder of a remote path's segments; empty: one per URI in /tmp
    storage_options: dict[str, Any] = Field(default_factory=dict)  # fsspec, remote path
