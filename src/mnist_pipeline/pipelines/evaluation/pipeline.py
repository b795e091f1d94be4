"""Evaluation pipeline: trained model + raw test set → metrics, per-class report, plots."""

from __future__ import annotations

from kedro.pipeline import Node, Pipeline

from .nodes import (
    compute_metrics,
    metrics_for_mlflow,
    per_class_report,
    plot_confusion_matrix,
    plot_misclassified,
    plot_training_curves,
    predict_test_set,
)


def create_pipeline(**kwargs) -> Pipeline:
    return Pipeline(
        [
            Node(
                predict_test_set,
                inputs=["trained_model", "mnist_test", "params:evaluation"],
                outputs="test_probabilities",
                name="predict_test_set",
            ),
            Node(
                compute_metrics,
                inputs=["test_probabilities", "mnist_test"],
                outputs="evaluation_metrics",
                name="compute_metrics",
            ),
            Node(
                metrics_for_mlflow,
                inputs="evaluation_metrics",
                outputs="evaluation_mlflow_metrics",
                name="log_evaluation_metrics",
            ),
            Node(
                per_class_report,
                inputs=["test_probabilities", "mnist_test"],
                outputs="per_class_report",
                name="per_class_report",
            ),
            Node(
                plot_confusion_matrix,
                inputs=["test_probabilities", "mnist_test"],
                outputs="confusion_matrix_plot",
                name="plot_confusion_matrix",
            ),
            Node(
                plot_misclassified,
                inputs=["test_probabilities", "mnist_test", "params:evaluation"],
                outputs="misclassified_plot",
                name="plot_misclassified",
            ),
            Node(
                plot_training_curves,
                inputs="training_history",
                outputs="training_curves_plot",
                name="plot_training_curves",
            ),
        ],
        tags=["azure"],
    )
