"""The Spark hook's lifecycle with a real local Spark session: started for a Spark node,
stopped after a run that fails (as a Kedro session calls the hooks), started again after.

Fast coverage (no training): the slow training tests cover the same hook through `kedro run`.
"""

from __future__ import annotations

import pytest
from kedro.io import DataCatalog, MemoryDataset
from kedro.pipeline import Node, Pipeline
from kedro.runner import SequentialRunner

from mnist_pipeline.hooks import SparkHooks, spark_settings


def _fail(scores):
    raise RuntimeError("the node failed")


def _spark_is_running() -> bool:
    from pyspark import SparkContext

    return SparkContext._active_spark_context is not None


@pytest.fixture
def hooks():
    spark = SparkHooks()
    spark._settings = spark_settings(
        {
            "spark.master": "local[1]",
            "spark.app.name": "mnist-pipeline-hook-test",
            "spark.driver.host": "127.0.0.1",
            "spark.driver.bindAddress": "127.0.0.1",
            "spark.ui.enabled": False,
        }
    )
    yield spark
    spark._stop()


def test_a_failed_run_stops_the_spark_session_it_started(hooks):
    pipeline = Pipeline([Node(_fail, "scores", None, tags=["spark"], name="fails")])
    catalog = DataCatalog({"scores": MemoryDataset([1, 2, 3])})

    hooks.before_pipeline_run(run_params={}, pipeline=pipeline, catalog=catalog)
    assert _spark_is_running()
    with pytest.raises(RuntimeError, match="the node failed"):
        SequentialRunner().run(pipeline, catalog)
    hooks.on_pipeline_error()
    assert not _spark_is_running()

    # The next run in the same process gets a fresh, working session.
    hooks.before_pipeline_run(run_params={}, pipeline=pipeline, catalog=catalog)
    assert hooks._spark.sparkContext.parallelize(range(4)).sum() == 6
    hooks.after_pipeline_run()
    assert not _spark_is_running()
