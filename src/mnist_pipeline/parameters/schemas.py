"""pydantic models of the stages' parameters (``conf/base/parameters_<stage>.yml``).

One model per top-level key. Every model forbids unknown keys (a misspelt ``min_acuracy``
is an error, not a silent default) and states ranges and choices. The YAML holds the
defaults; fields here are required unless the YAML itself may leave them out or null.

To add a stage: write its model (subclass :class:`Strict`) and add it to
:data:`mnist_pipeline.parameters.SCHEMAS` under its top-level key. Keys without a model
are not validated.
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from mnist_pipeline.registry.config import check_workspace

PositiveInt = Annotated[int, Field(ge=1)]
NonNegativeInt = Annotated[int, Field(ge=0)]
Fraction = Annotated[float, Field(ge=0.0, le=1.0)]


class Strict(BaseModel):
    """Unknown keys are errors; values are checked, never coerced from other types."""

    model_config = ConfigDict(extra="forbid", strict=False, frozen=True)


# ---- ingestion / preprocessing / evaluation ------------------------------------------------
class SplitExpectation(Strict):
    name: str
    num_images: PositiveInt | None
    min_images_per_class: NonNegativeInt


class Ingestion(Strict):
    train: SplitExpectation
    test: SplitExpectation


class Augmentation(Strict):
    enabled: bool
    copies: PositiveInt
    max_shift: NonNegativeInt
    seed: int


class Preprocessing(Strict):
    validation_size: Annotated[float, Field(gt=0)]
    seed: int
    augmentation: Augmentation


class Evaluation(Strict):
    batch_size: PositiveInt
    max_misclassified: NonNegativeInt


# ---- training ------------------------------------------------------------------------------
class ConvBlock(Strict):
    filters: PositiveInt
    kernel_size: PositiveInt
    strides: PositiveInt = 1
    pool: bool = True


class Augment(Strict):
    max_shift: NonNegativeInt = 0  # pixels (training.model.RandomShift)


class ModelSpec(Strict):
    conv_blocks: Annotated[list[ConvBlock], Field(min_length=1)]
    batch_norm: bool
    dense_units: NonNegativeInt
    dropout: Annotated[float, Field(ge=0.0, lt=1.0)]
    augment: Augment | None = None


class Optimizer(Strict):
    name: Literal["adam", "sgd"]  # training.model._OPTIMIZERS
    learning_rate: Annotated[float, Field(gt=0)]
    schedule: Literal["constant", "cosine"]  # training.model.SCHEDULES
    final_learning_rate: Annotated[float, Field(ge=0)]
    warmup_fraction: Annotated[float, Field(ge=0.0, lt=1.0)] = 0.0
    cycle_epochs: NonNegativeInt = 0  # 0: one cycle over the whole run
    restart_peak_factor: Annotated[float, Field(gt=0)] = 1.0


class Loss(Strict):
    label_smoothing: Annotated[float, Field(ge=0.0, lt=1.0)] = 0.0


Threads = NonNegativeInt | Literal["auto"]


class WorkerThreads(Strict):
    intra_op: Threads
    inter_op: Threads


class Distribution(Strict):
    num_slots: PositiveInt
    use_gpu: bool
    gpu_resource_name: str
    communication: Literal["auto", "ring", "nccl"]
    timeout_s: Annotated[float, Field(gt=0)]
    slot_wait_s: Annotated[float, Field(ge=0)]
    max_restarts: NonNegativeInt


class Checkpoint(Strict):
    dir: Annotated[str, Field(min_length=1)]
    keep_after_success: bool


class PresetOverrides(Strict):
    """What a preset may override (merged over the training parameters)."""

    model: dict | None = None
    optimizer: dict | None = None
    loss: dict | None = None
    batch_size: PositiveInt | None = None
    epochs: PositiveInt | None = None


class Training(Strict):
    mode: Literal["single_node", "local", "distributed", "custom"]  # training.runner.MODES
    model: ModelSpec
    optimizer: Optimizer
    loss: Loss = Loss()
    batch_size: PositiveInt
    epochs: PositiveInt
    seed: int
    worker_threads: WorkerThreads
    distribution: Distribution
    output_dir: Annotated[str, Field(min_length=1)]
    checkpoint: Checkpoint
    preset: str = "default"
    presets: dict[str, PresetOverrides] = {}


# ---- promotion -----------------------------------------------------------------------------
class Gate(Strict):
    mode: Literal["enabled", "dry_run", "disabled"]
    metric: Annotated[str, Field(min_length=1)]
    min_accuracy: Fraction
    tolerance: Fraction
    fail_run_on_refusal: bool


class ProductionWorkspace(Strict):
    tracking_uri: Annotated[str, Field(min_length=1)]
    registry_uri: str | None
    model_name: Annotated[str, Field(min_length=1)]
    alias: Annotated[str, Field(min_length=1)]
    experiment: Annotated[str, Field(min_length=1)]
    artifact_location: str | None

    @model_validator(mode="after")
    def _a_registry_accepts_it(self) -> ProductionWorkspace:
        """URI forms, names and alias as the registry takes them (before the run, not at the
        promotion after training)."""
        check_workspace("promotion.production", self.model_dump())
        return self


class Verify(Strict):
    num_images: PositiveInt
    seed: int
    atol: Annotated[float, Field(ge=0)]


class Promotion(Strict):
    model_name: Annotated[str, Field(min_length=1)]
    champion_alias: Annotated[str, Field(min_length=1)]
    gate: Gate
    production: ProductionWorkspace
    verify: Verify
