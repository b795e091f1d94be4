"""Preprocessing pipeline: validated arrays → sharded model input + fingerprint."""

from __future__ import annotations

from kedro.pipeline import Node, Pipeline

from .nodes import (
    augment_with_shifts,
    fingerprint_model_input,
    scale_images,
    split_train_validation,
)


def create_pipeline(**kwargs) -> Pipeline:
    return Pipeline(
        [
            Node(scale_images, "mnist_train", "scaled_train", name="scale_train_images"),
            Node(scale_images, "mnist_test", "test_model_input", name="scale_test_images"),
            Node(
                split_train_validation,
                inputs=["scaled_train", "params:preprocessing"],
                outputs=["split_train", "validation_model_input"],
                name="split_train_validation",
            ),
            Node(
                augment_with_shifts,
                inputs=["split_train", "params:preprocessing.augmentation"],
                outputs="train_model_input",
                name="augment_train_images",
            ),
            Node(
                fingerprint_model_input,
                inputs=["train_model_input", "validation_model_input", "test_model_input"],
                outputs="model_input_fingerprint",
                name="fingerprint_model_input",
            ),
        ],
        tags=["azure"],
    )
