"""Deploy pipeline (production workspace): ``kedro run --env gcp --pipelines deploy``.

Not part of ``__default__`` (the sandbox lifecycle): it runs where the production
registry is, after a promotion.
"""

from __future__ import annotations

from kedro.pipeline import Node, Pipeline

from mnist_pipeline.pipelines.monitoring.nodes import compute_drift_reference

from .nodes import (
    approve_deployment,
    record_on_model_card,
    select_validation_batch,
    summarise_deployment,
    validate_production_model,
)


def create_pipeline(**kwargs) -> Pipeline:
    return Pipeline(
        [
            Node(
                select_validation_batch,
                inputs=["mnist_t10k_raw", "params:deploy_validation"],
                outputs="deploy_validation_batch",
                name="select_validation_batch",
            ),
            Node(
                validate_production_model,
                inputs=[
                    "deploy_validation_batch",
                    "params:deploy_model",
                    "params:deploy_validation",
                    "params:serving",
                    "params:deploy_environment",
                ],
                outputs="deployment_report",
                name="validate_in_model_server",
            ),
            Node(
                summarise_deployment,
                inputs="deployment_report",
                outputs="deployment_summary",
                name="summarise_deployment",
            ),
            Node(
                record_on_model_card,
                inputs=["deployment_report", "params:deploy_model"],
                outputs="deployed_model_card",
                name="record_on_model_card",
            ),
            Node(
                approve_deployment,
                inputs=["deployment_report", "deployment_summary", "deployed_model_card"],
                outputs=None,
                name="approve_deployment",
            ),
            # Drift monitoring's reference for this version, stored with it (see
            # pipelines/monitoring): its predictions on training images, once deployable.
            Node(
                compute_drift_reference,
                inputs=[
                    "mnist_train_raw",
                    "deployment_report",
                    "params:deploy_model",
                    "params:drift_reference",
                ],
                outputs="drift_reference",
                name="compute_drift_reference",
            ),
        ],
        tags=["gcp", "deploy"],
    )
