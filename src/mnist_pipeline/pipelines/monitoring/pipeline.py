"""Drift monitoring (production workspace): ``kedro run --env gcp --pipelines monitoring``.

Not part of ``__default__``. The reference it compares with is computed by the deploy
pipeline (:func:`.nodes.compute_drift_reference`) and stored with the model version.
"""

from __future__ import annotations

from kedro.pipeline import Node, Pipeline

from .nodes import check_drift, drift_metrics, drift_report, plot_drift, summarise_drift


def create_pipeline(**kwargs) -> Pipeline:
    return Pipeline(
        [
            Node(
                drift_report,
                inputs=["inference_log", "batch_scores", "drift_reference", "params:monitoring"],
                outputs="drift_report",
                name="compare_window_with_reference",
            ),
            Node(
                summarise_drift,
                inputs="drift_report",
                outputs="drift_summary",
                name="summarise_drift",
            ),
            Node(plot_drift, inputs="drift_report", outputs="drift_report_plot", name="plot_drift"),
            Node(
                drift_metrics,
                inputs="drift_report",
                outputs="drift_mlflow_metrics",
                name="log_drift_metrics",
            ),
            Node(
                check_drift,
                inputs=["drift_report", "drift_summary", "params:monitoring"],
                outputs=None,
                name="check_drift",
            ),
        ],
        tags=["gcp", "monitoring"],
    )
