"""Project hooks: the Spark session's lifecycle.

The session is created from ``conf/<env>/spark.yml`` before a run whose pipeline
has a node tagged ``spark`` that needs it, and stopped when that run ends or fails —
except on a Databricks cluster (``DATABRICKS_RUNTIME_VERSION`` set), whose runtime owns the
SparkContext (``getOrCreate`` returns its session) and shares it between the job's tasks.
The training node is tagged ``spark`` but needs Spark only in the modes that use it
(``training.mode`` local, distributed, custom; ``single_node`` does not): the hook
reads the run's resolved ``params:training``. Runs of other stages never start a JVM.

Python workers: ``spark.yml`` reuses them across tasks (a batch-scoring worker keeps its
imported TensorFlow and loaded model for its next task). A run that trains on Spark gets
fresh ones whatever ``spark.yml`` says: TensorFlow's collective ops cannot be configured
twice in one process, and thread settings apply only to a fresh runtime.
"""

from __future__ import annotations

import logging
import os
import sys
import time
from typing import Any

from kedro.config import MissingConfigException
from kedro.framework.hooks import hook_impl

from mnist_pipeline.runtime_env import (
    DATABRICKS_RUNTIME,
    default_spark_local_ip,
    runtime_owns_spark,
)

logger = logging.getLogger(__name__)

SPARK_TAG = "spark"
TRAINING_PARAMS = "params:training"
WORKER_REUSE = "spark.python.worker.reuse"


def spark_settings(conf: dict[str, Any]) -> dict[str, str]:
    """Spark properties from ``spark.yml`` as strings, with the project's defaults.

    ``spark.pyspark.python`` defaults to the running interpreter: executors must
    import this project's packages (spark-tensorflow-distributor, this package).
    """
    settings = {str(key): _as_spark_value(value) for key, value in (conf or {}).items()}
    if not settings.get("spark.master"):
        raise ValueError("spark.yml: spark.master is empty; set it or SPARK_MASTER")
    settings.setdefault("spark.pyspark.python", sys.executable)
    return settings


def _as_spark_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def create_spark_session(settings: dict[str, str]):
    """A SparkSession with exactly these properties (the one place that builds it)."""
    from pyspark.sql import SparkSession

    # PySpark reads the workers' interpreter from the environment, not only the conf.
    os.environ.setdefault("PYSPARK_PYTHON", settings["spark.pyspark.python"])
    # A local master binds to loopback: say so before the JVM starts (no loopback hint);
    # never on a real cluster, never over a SPARK_LOCAL_IP already set.
    default_spark_local_ip(settings["spark.master"])
    builder = SparkSession.builder
    for key, value in settings.items():
        builder = builder.config(key, value)
    spark = builder.getOrCreate()
    spark.sparkContext.setLogLevel(settings.get("spark.log.level", "WARN"))
    return spark


def settings_for_run(settings: dict[str, str], trains: bool) -> dict[str, str]:
    """``settings`` with fresh Python workers forced when the run trains on Spark."""
    if not trains or settings.get(WORKER_REUSE) == "false":
        return settings
    logger.info("Training on Spark: one fresh Python worker per task (%s=false)", WORKER_REUSE)
    return {**settings, WORKER_REUSE: "false"}


def needs_spark(node, catalog) -> bool:
    """Whether ``node`` needs a Spark session in this run.

    A node tagged ``spark`` does, unless it takes ``params:training`` and the resolved
    ``training.mode`` trains without Spark (``single_node``).
    """
    if SPARK_TAG not in node.tags:
        return False
    if TRAINING_PARAMS not in node.inputs:
        return True
    # lazy: mnist_pipeline.training imports TensorFlow; asked only of a run with a training node
    from mnist_pipeline.training.runner import SPARK_MODES

    mode = (catalog.load(TRAINING_PARAMS) or {}).get("mode")
    return mode in SPARK_MODES


class SparkHooks:
    """Create the Spark session for runs that need one; stop it afterwards."""

    def __init__(self) -> None:
        self._settings: dict[str, str] | None = None
        self._spark = None

    @hook_impl
    def after_context_created(self, context) -> None:
        try:
            conf = context.config_loader["spark"]
        except (KeyError, MissingConfigException):  # no spark.yml: Spark-free project
            conf = {}
        self._settings = spark_settings(conf) if conf else None

    @hook_impl
    def before_pipeline_run(self, run_params: dict[str, Any], pipeline, catalog) -> None:
        spark_nodes = [node for node in pipeline.nodes if needs_spark(node, catalog)]
        if not spark_nodes:
            return
        if self._settings is None:
            raise ValueError(
                "this pipeline has nodes tagged 'spark' but no spark.yml was found in "
                "conf/base or conf/<env>"
            )
        logger.info(
            "Starting Spark (master %s); the JVM takes a while to start",
            self._settings["spark.master"],
        )
        started = time.monotonic()
        # A Spark node that takes the training parameters trains on Spark in this run.
        trains = any(TRAINING_PARAMS in node.inputs for node in spark_nodes)
        self._spark = create_spark_session(settings_for_run(self._settings, trains))
        logger.info(
            "Spark ready in %.0f s (%s, %d task slots)",
            time.monotonic() - started,
            self._spark.sparkContext.master,
            self._spark.sparkContext.defaultParallelism,
        )

    def _stop(self) -> None:
        if self._spark is None:
            return
        if runtime_owns_spark():
            logger.info(
                "Leaving Spark running: the Databricks runtime owns the session (%s=%s)",
                DATABRICKS_RUNTIME,
                os.environ[DATABRICKS_RUNTIME],
            )
        else:
            logger.info("Stopping Spark")
            self._spark.stop()
        self._spark = None

    @hook_impl
    def after_pipeline_run(self) -> None:
        self._stop()

    @hook_impl
    def on_pipeline_error(self) -> None:
        self._stop()
