"""Training nodes: train the CNN in the configured mode, summarise the run."""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from mnist_pipeline.datasets import ImageShards
from mnist_pipeline.registry.tracking import live_epoch_metrics

if TYPE_CHECKING:  # TensorFlow is imported when the node runs, not when the pipeline is built
    from keras import Model as KerasModel

    from mnist_pipeline.training import TrainingResult
else:
    # Kedro's parameter validator resolves every node's annotations at the start of a run,
    # before any node imports TensorFlow: there the model's type is just a name.
    KerasModel = Any


def train_model(
    train: ImageShards,
    validation: ImageShards,
    fingerprint: dict[str, Any],
    params: dict[str, Any],
) -> tuple[KerasModel, dict[str, list[float]], dict[str, Any]]:
    """Train the CNN on ``train`` (validating on ``validation``) as ``params['mode']`` says.

    Workers read the splits by path and shard them; the chief saves the model
    (with its 0–255 preprocessing) and returns its path, which is loaded here.
    Each epoch's figures reach the active MLflow run (``epoch.loss``, …) as the
    chief reports them, while training runs.

    Returns:
        ``(trained_model, history, summary)``: the model that takes 0–255 images,
        metric → per-epoch values, and what the run measured (:func:`summarise`).
    """
    # lazy: TensorFlow loads when the node runs, not when kedro lists the pipelines
    from mnist_pipeline.training import load_trained_model, run_training

    result = run_training(
        train_path=train.path,
        validation_path=validation.path,
        fingerprint=fingerprint["model_input"],
        config=params,
        storage_options=train.storage_options,
        on_event=live_epoch_metrics(),  # per-epoch figures to the active MLflow run, live
    )
    model = load_trained_model(result.model_path, train.storage_options)
    return model, result.history, summarise(result, params)


def summarise(result: TrainingResult, params: dict[str, Any]) -> dict[str, Any]:
    """The run in figures: mode, workers, times, throughput, final validation metrics."""
    final = {f"final_{name}": values[-1] for name, values in result.history.items() if values}
    images_per_s = result.examples_trained / result.fit_time_s if result.fit_time_s else 0.0
    return {
        "mode": params["mode"],
        "num_workers": result.num_workers,
        "epochs": result.epochs,
        "resumed_from_epoch": result.initial_epoch,
        "batch_size": result.global_batch_size,
        "wall_time_s": round(result.wall_time_s, 3),
        "fit_time_s": round(result.fit_time_s, 3),
        "images_per_s": round(images_per_s, 1),
        "run_key": result.run_key,
        **final,
    }


def outcome(outputs: Mapping[str, Any]) -> str | None:
    """The stage's line in the run's log: mode, workers, epochs, time, throughput, final
    validation accuracy."""
    s = outputs.get("training_summary")
    if s is None:
        return None
    line = (
        f"training: {s.get('mode', '?')} mode, {s.get('num_workers', '?')} worker(s), "
        f"{s.get('epochs', '?')} epochs in {float(s.get('wall_time_s', 0)):.0f} s "
        f"({float(s.get('images_per_s', 0)):,.0f} images/s)"
    )
    if "final_val_accuracy" in s:
        line += f"; validation accuracy {100 * float(s['final_val_accuracy']):.2f} %"
    if s.get("resumed_from_epoch"):
        line += f" (resumed from epoch {s['resumed_from_epoch']})"
    return line
