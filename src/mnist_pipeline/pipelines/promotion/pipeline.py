"""Promotion pipeline: sandbox registration → quality gate → verified copy into production."""

from __future__ import annotations

from kedro.pipeline import Node, Pipeline

from .nodes import judge_candidate, promote_candidate, register_candidate


def create_pipeline(**kwargs) -> Pipeline:
    return Pipeline(
        [
            Node(
                register_candidate,
                inputs=[
                    "trained_model",
                    "evaluation_metrics",
                    "model_input_fingerprint",
                    "mnist_test",
                    "params:promotion",
                ],
                outputs="candidate_model_version",
                name="register_candidate",
            ),
            Node(
                judge_candidate,
                inputs=["candidate_model_version", "params:promotion"],
                outputs="gate_verdict",
                name="judge_candidate",
            ),
            Node(
                promote_candidate,
                inputs=[
                    "candidate_model_version",
                    "gate_verdict",
                    "mnist_test",
                    "params:promotion",
                ],
                outputs="promotion_report",
                name="promote_candidate",
            ),
        ],
        tags=["azure"],
    )
