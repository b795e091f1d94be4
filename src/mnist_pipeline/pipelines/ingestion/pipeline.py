"""Ingestion pipeline: raw MNIST splits → validated arrays + a data report."""

from __future__ import annotations

from kedro.pipeline import Node, Pipeline

from .nodes import (
    plot_class_balance,
    plot_samples,
    summarise_classes,
    summarise_pixels,
    validate_split,
)


def create_pipeline(**kwargs) -> Pipeline:
    return Pipeline(
        [
            Node(
                validate_split,
                inputs=["mnist_train_raw", "params:ingestion.train"],
                outputs="mnist_train",
                name="validate_train_split",
            ),
            Node(
                validate_split,
                inputs=["mnist_t10k_raw", "params:ingestion.test"],
                outputs="mnist_test",
                name="validate_test_split",
            ),
            Node(
                summarise_classes,
                inputs=["mnist_train", "mnist_test"],
                outputs="mnist_class_summary",
                name="summarise_classes",
            ),
            Node(
                summarise_pixels,
                inputs=["mnist_train", "mnist_test"],
                outputs="mnist_pixel_statistics",
                name="summarise_pixels",
            ),
            Node(
                plot_class_balance,
                inputs="mnist_class_summary",
                outputs="mnist_class_balance_plot",
                name="plot_class_balance",
            ),
            Node(
                plot_samples,
                inputs="mnist_train",
                outputs="mnist_samples_plot",
                name="plot_samples",
            ),
        ],
        tags=["azure"],
    )
