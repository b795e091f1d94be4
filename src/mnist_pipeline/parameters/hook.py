"""The Kedro hook that validates the parameters of the pipeline being run, before any node."""

from __future__ import annotations

from typing import Any

from kedro.framework.hooks import hook_impl

from mnist_pipeline.parameters import keys_read_by, validate


class ParametersValidationHook:
    """``before_pipeline_run``: check the parameters this pipeline's nodes read, once.

    Runs first (``tryfirst``), before the Spark session starts and before kedro-mlflow logs
    anything. Stages without a schema (see :data:`mnist_pipeline.parameters.SCHEMAS`) are
    not checked; ``kedro serve`` runs no pipeline and checks nothing.
    """

    @hook_impl(tryfirst=True)
    def before_pipeline_run(self, run_params: dict[str, Any], pipeline: Any, catalog: Any) -> None:
        keys = keys_read_by(name for node in pipeline.nodes for name in node.inputs)
        if keys:
            validate(catalog.load("parameters"), keys)
