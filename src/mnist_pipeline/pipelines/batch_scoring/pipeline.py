"""Batch scoring (production workspace): ``kedro run --env gcp --pipelines batch_scoring``.

Not part of ``__default__`` (the sandbox lifecycle). The ``spark`` tag makes the
project's hook start the Spark session (``conf/<env>/spark.yml``, ``local[*]`` unless
``SPARK_MASTER`` says otherwise).
"""

from __future__ import annotations

from kedro.pipeline import Node, Pipeline

from .nodes import batch_scoring_metrics, pin_scoring_model, score_batch, summarise_batch_scoring


def create_pipeline(**kwargs) -> Pipeline:
    return Pipeline(
        [
            Node(
                pin_scoring_model,
                inputs="params:deploy_model",
                outputs="batch_scoring_model",
                name="pin_scoring_model",
            ),
            Node(
                score_batch,
                inputs=["batch_scoring_model", "params:deploy_model", "params:batch_scoring"],
                outputs="batch_scoring_manifest",
                name="score_on_spark",
                tags=["spark"],
            ),
            Node(
                summarise_batch_scoring,
                inputs="batch_scoring_manifest",
                outputs="batch_scoring_summary",
                name="summarise_batch_scoring",
            ),
            Node(
                batch_scoring_metrics,
                inputs="batch_scoring_manifest",
                outputs="batch_scoring_mlflow_metrics",
                name="log_batch_scoring_metrics",
            ),
        ],
        tags=["gcp", "batch_scoring"],
    )
