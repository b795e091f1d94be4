"""Promotion pipeline: sandbox registration → quality gate → verified copy into production."""

from __future__ import annotations

from kedro.pipeline import Node, Pipeline

from .nodes import judge_candidate, promote_candidate, publish_model_card, register_candidate


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
                # In memory for the next node (this run's own state), and the report.
                outputs=["gate_decision", "gate_verdict"],
                name="judge_candidate",
            ),
            Node(
                promote_candidate,
                inputs=[
                    "candidate_model_version",
                    "gate_decision",
                    "mnist_test",
                    "params:promotion",
                ],
                outputs="promotion_report",
                name="promote_candidate",
            ),
            Node(
                publish_model_card,
                inputs={
                    "report": "promotion_report",
                    "candidate": "candidate_model_version",
                    "verdict": "gate_verdict",
                    "metrics": "evaluation_metrics",
                    "per_class": "per_class_report",
                    "fingerprint": "model_input_fingerprint",
                    "params": "params:promotion",
                },
                outputs="model_card",
                name="publish_model_card",
            ),
        ],
        tags=["azure"],
    )
