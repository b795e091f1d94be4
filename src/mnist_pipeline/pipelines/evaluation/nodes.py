"""Evaluation nodes: the trained model on the raw test set, metrics, report and plots.

The model is evaluated exactly as it will be served: on ``mnist_test`` as MNIST stores it
(uint8, 0–255, no channel axis) through the image contract, never on pre-scaled arrays.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
import pandas as pd

# Figures are built with the object API, not pyplot (as in ingestion): no global figure
# registry to leak into, no GUI backend to pick, the same in a notebook and on a server.
from matplotlib.figure import Figure
from sklearn.metrics import confusion_matrix, precision_recall_fscore_support

from mnist_pipeline.image_contract import NUM_CLASSES, to_model_batch

_EPS = 1e-7


def predict_test_set(model: Any, test: dict[str, np.ndarray], params: dict[str, Any]) -> np.ndarray:
    """Class probabilities (N, 10) of the raw test images, batch by batch.

    Args:
        model: a Keras model of the trained-model contract (0–255 in, probabilities out).
        test: ``{"images": uint8 (N, 28, 28), "labels": uint8 (N,)}``.
        params: ``batch_size``.
    """
    batch = to_model_batch(test["images"])
    probabilities = model.predict(batch, batch_size=int(params["batch_size"]), verbose=0)
    probabilities = np.asarray(probabilities, dtype=np.float32)
    if probabilities.shape != (len(batch), NUM_CLASSES):
        raise ValueError(
            f"the model must return (N, {NUM_CLASSES}) probabilities, "
            f"returned {probabilities.shape} for {len(batch)} images"
        )
    return probabilities


def compute_metrics(probabilities: np.ndarray, test: dict[str, np.ndarray]) -> dict[str, float]:
    """Test accuracy, log loss (cross-entropy) and macro-averaged precision/recall/F1."""
    labels = test["labels"].astype(np.int64)
    predicted = probabilities.argmax(axis=1)
    picked = np.clip(probabilities[np.arange(len(labels)), labels], _EPS, 1.0)
    precision, recall, f1, _ = precision_recall_fscore_support(
        labels, predicted, labels=range(NUM_CLASSES), average="macro", zero_division=0
    )
    return {
        "test_accuracy": float((predicted == labels).mean()),
        "test_loss": float(-np.log(picked).mean()),
        "test_macro_precision": float(precision),
        "test_macro_recall": float(recall),
        "test_macro_f1": float(f1),
        "test_images": len(labels),
    }


def metrics_for_mlflow(metrics: dict[str, float]) -> dict[str, dict[str, float]]:
    """The metrics in kedro-mlflow's ``MlflowMetricsHistoryDataset`` format (one step)."""
    return {name: {"value": float(value), "step": 0} for name, value in metrics.items()}


def per_class_report(probabilities: np.ndarray, test: dict[str, np.ndarray]) -> pd.DataFrame:
    """Precision, recall, F1 and support of each digit (one row per digit)."""
    labels = test["labels"].astype(np.int64)
    precision, recall, f1, support = precision_recall_fscore_support(
        labels, probabilities.argmax(axis=1), labels=range(NUM_CLASSES), zero_division=0
    )
    return pd.DataFrame(
        {
            "digit": range(NUM_CLASSES),
            "precision": precision.round(4),
            "recall": recall.round(4),
            "f1": f1.round(4),
            "support": support,
        }
    )


def plot_confusion_matrix(probabilities: np.ndarray, test: dict[str, np.ndarray]) -> Figure:
    """Confusion matrix (true digit × predicted digit), counts written in the cells."""
    matrix = confusion_matrix(
        test["labels"], probabilities.argmax(axis=1), labels=range(NUM_CLASSES)
    )
    figure = Figure(figsize=(7, 6))
    axis = figure.subplots()
    image = axis.imshow(np.log1p(matrix), cmap="Blues")
    for true in range(NUM_CLASSES):
        for pred in range(NUM_CLASSES):
            count = matrix[true, pred]
            if count:
                axis.text(
                    pred,
                    true,
                    str(count),
                    ha="center",
                    va="center",
                    fontsize=7,
                    color="white" if true == pred else "black",
                )
    axis.set(
        xticks=range(NUM_CLASSES),
        yticks=range(NUM_CLASSES),
        xlabel="predicted digit",
        ylabel="true digit",
        title=f"Confusion matrix ({matrix.sum()} test images)",
    )
    figure.colorbar(image, ax=axis, label="log(1 + count)")
    figure.tight_layout()
    return figure


def plot_misclassified(
    probabilities: np.ndarray, test: dict[str, np.ndarray], params: dict[str, Any]
) -> Figure:
    """A grid of misclassified test images, most confident mistakes first.

    Each title reads ``pred P (p%) / true T``. ``params.max_misclassified`` caps the grid.
    """
    labels = test["labels"].astype(np.int64)
    predicted = probabilities.argmax(axis=1)
    wrong = np.flatnonzero(predicted != labels)
    confidence = probabilities[wrong, predicted[wrong]]
    wrong = wrong[np.argsort(-confidence, kind="stable")][: int(params["max_misclassified"])]
    columns = 6
    rows = max(1, -(-len(wrong) // columns))
    figure = Figure(figsize=(columns * 1.6, rows * 1.9))
    axes = figure.subplots(rows, columns, squeeze=False)
    for axis in axes.flat:
        axis.axis("off")
    for axis, index in zip(axes.flat, wrong, strict=False):
        axis.imshow(test["images"][index], cmap="gray_r", vmin=0, vmax=255)
        axis.set_title(
            f"pred {predicted[index]} ({probabilities[index, predicted[index]]:.0%})\n"
            f"true {labels[index]}",
            fontsize=8,
            color="firebrick",
        )
    total = int((predicted != labels).sum())
    figure.suptitle(
        f"Misclassified: {total} of {len(labels)} test images"
        + (f" (the {len(wrong)} most confident shown)" if total > len(wrong) else ""),
        fontsize=10,
    )
    figure.tight_layout()
    return figure


def plot_training_curves(history: dict[str, list[float]]) -> Figure:
    """Loss and accuracy per epoch, training against validation (``val_*``)."""
    figure = Figure(figsize=(10, 4))
    axes = figure.subplots(1, 2)
    for axis, metric in zip(axes, ("loss", "accuracy"), strict=True):
        for key, style in ((metric, "-o"), (f"val_{metric}", "--s")):
            values = history.get(key)
            if values:
                axis.plot(range(1, len(values) + 1), values, style, label=key, markersize=3)
        axis.set(xlabel="epoch", ylabel=metric, title=metric)
        if axis.has_data():
            axis.legend()
        else:
            axis.text(
                0.5, 0.5, f"no '{metric}' in the history", ha="center", transform=axis.transAxes
            )
    figure.tight_layout()
    return figure


def outcome(outputs: Mapping[str, Any]) -> str | None:
    """The stage's line in the run's log: test accuracy, loss and macro F1."""
    m = outputs.get("evaluation_metrics")
    if m is None:
        return None
    return (
        f"evaluation: test accuracy {100 * float(m.get('test_accuracy', 0)):.2f} % on "
        f"{int(m.get('test_images', 0)):,} images (loss {float(m.get('test_loss', 0)):.4f}, "
        f"macro F1 {float(m.get('test_macro_f1', 0)):.4f})"
    )
