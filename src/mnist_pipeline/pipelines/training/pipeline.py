"""Training pipeline: sharded model input → trained model, history, summary."""

from __future__ import annotations

from kedro.pipeline import Node, Pipeline

from .nodes import train_model


def create_pipeline(**kwargs) -> Pipeline:
    return Pipeline(
        [
            Node(
                train_model,
                inputs=[
                    "train_model_input",
                    "validation_model_input",
                    "model_input_fingerprint",
                    "params:training",
                ],
                outputs=["trained_model", "training_history", "training_summary"],
                name="train_model",
                tags=["spark"],
            ),
        ],
        tags=["azure"],
    )
