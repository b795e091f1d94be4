"""Live per-epoch metrics: training progress events → the active MLflow run, as they arrive.

The training runner hears one event per epoch from the chief worker (over TCP, in a
listener thread of the driver; see :mod:`mnist_pipeline.training.progress`). The
callback made here logs that epoch's figures (``loss``, ``accuracy``, ``val_loss``,
``val_accuracy``) as ``epoch.<name>`` at step ``epoch - 1`` to the MLflow run that
was active when it was made (kedro-mlflow's run of ``kedro run``), so they are
visible in the MLflow UI while training runs, and recorded by a training-only run.

MLflow's active run is thread-local: the callback binds the run id and tracking URI
at creation (in the node's thread) and logs through an ``MlflowClient``.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import Any

logger = logging.getLogger(__name__)

METRIC_PREFIX = "epoch"


def live_epoch_metrics(prefix: str = METRIC_PREFIX) -> Callable[[dict[str, Any]], None] | None:
    """A progress-event callback that logs each epoch's figures to the active MLflow run.

    Returns ``None`` when no MLflow run is active (a run outside kedro-mlflow, a
    benchmark): training then logs nothing to MLflow. A failure to log is a warning,
    never a training failure.
    """
    import mlflow
    from mlflow.entities import Metric

    run = mlflow.active_run()
    if run is None:
        return None
    run_id = run.info.run_id
    client = mlflow.MlflowClient(tracking_uri=mlflow.get_tracking_uri())

    def on_event(event: dict[str, Any]) -> None:
        if event.get("event") != "epoch":
            return
        step = int(event["epoch"]) - 1
        now = int(time.time() * 1000)
        metrics = [
            Metric(f"{prefix}.{name}", float(value), now, step)
            for name, value in (event.get("logs") or {}).items()
            if isinstance(value, (int, float)) and not isinstance(value, bool)
        ]
        try:
            client.log_batch(run_id, metrics=metrics)
        except Exception as exc:  # tracking must never stop training
            logger.warning("could not log epoch %s metrics to MLflow: %s", event["epoch"], exc)

    return on_event
