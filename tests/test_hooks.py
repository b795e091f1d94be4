from __future__ import annotations

import sys

import pytest

from mnist_pipeline.hooks import spark_settings


def test_spark_settings_are_strings_with_the_running_interpreter_for_workers():
    settings = spark_settings({"spark.master": "local[2]", "spark.python.worker.reuse": False})
    assert settings["spark.python.worker.reuse"] == "false"
    assert settings["spark.pyspark.python"] == sys.executable


def test_configured_worker_python_is_kept():
    settings = spark_settings({"spark.master": "local[1]", "spark.pyspark.python": "/opt/py"})
    assert settings["spark.pyspark.python"] == "/opt/py"


def test_empty_master_is_refused_with_the_file_and_key():
    with pytest.raises(ValueError, match=r"spark\.yml: spark\.master is empty"):
        spark_settings({"spark.master": ""})


def _spark_node(inputs: list[str], tags: tuple[str, ...] = ("spark",)):
    from kedro.pipeline import Node

    return Node(lambda *args: None, inputs=inputs, outputs=None, tags=list(tags), name="n")


def _catalog(mode: str):
    from kedro.io import DataCatalog, MemoryDataset

    return DataCatalog({"params:training": MemoryDataset({"mode": mode})})


@pytest.mark.parametrize(
    ("mode", "expected"),
    [("single_node", False), ("local", True), ("distributed", True), ("custom", True)],
)
def test_the_training_node_needs_spark_only_in_the_modes_that_use_it(mode, expected):
    from mnist_pipeline.hooks import needs_spark

    assert needs_spark(_spark_node(["params:training"]), _catalog(mode)) is expected


def test_other_spark_nodes_always_need_it_and_untagged_nodes_never():
    from mnist_pipeline.hooks import needs_spark

    assert needs_spark(_spark_node(["scores"]), _catalog("single_node")) is True
    assert needs_spark(_spark_node(["params:training"], tags=()), _catalog("local")) is False


def test_no_spark_session_is_created_for_a_single_node_run():
    from kedro.pipeline import Pipeline
    from pyspark import SparkContext

    from mnist_pipeline.hooks import SparkHooks

    if SparkContext._active_spark_context is not None:
        pytest.skip("another test left a Spark context running")
    hooks = SparkHooks()
    hooks._settings = spark_settings({"spark.master": "local[1]"})
    pipeline = Pipeline([_spark_node(["params:training"])])
    hooks.before_pipeline_run(run_params={}, pipeline=pipeline, catalog=_catalog("single_node"))
    assert hooks._spark is None
    assert SparkContext._active_spark_context is None
    hooks.after_pipeline_run()


def test_a_run_that_trains_on_spark_gets_fresh_python_workers_whatever_the_conf_says():
    from mnist_pipeline.hooks import settings_for_run

    reused = spark_settings({"spark.master": "local[1]", "spark.python.worker.reuse": True})
    assert settings_for_run(reused, trains=True)["spark.python.worker.reuse"] == "false"
    assert settings_for_run(reused, trains=False)["spark.python.worker.reuse"] == "true"
    assert reused["spark.python.worker.reuse"] == "true"  # the configured settings are kept


@pytest.mark.parametrize(
    ("inputs", "mode", "reuse"),
    [(["params:training"], "local", "false"), (["scoring_inputs"], "local", "true")],
    ids=["training", "batch_scoring"],
)
def test_the_session_reuses_python_workers_unless_the_run_trains_on_spark(
    inputs, mode, reuse, monkeypatch
):
    from kedro.pipeline import Pipeline

    from mnist_pipeline import hooks as project_hooks

    created: list[dict[str, str]] = []

    class _Session:
        class sparkContext:  # mirrors pyspark's attribute name
            master, defaultParallelism = "local[1]", 1

        def stop(self) -> None:
            pass

    monkeypatch.setattr(
        project_hooks,
        "create_spark_session",
        lambda settings: created.append(settings) or _Session(),
    )
    hooks = project_hooks.SparkHooks()
    hooks._settings = spark_settings(
        {"spark.master": "local[1]", "spark.python.worker.reuse": True}
    )
    pipeline = Pipeline([_spark_node(inputs)])
    hooks.before_pipeline_run(run_params={}, pipeline=pipeline, catalog=_catalog(mode))
    hooks.after_pipeline_run()
    assert [settings["spark.python.worker.reuse"] for settings in created] == [reuse]


def test_the_base_spark_conf_reuses_python_workers(project_root):
    import yaml

    conf = yaml.safe_load((project_root / "conf/base/spark.yml").read_text())
    assert conf["spark.python.worker.reuse"] is True


@pytest.mark.parametrize(("runtime", "stopped"), [(None, True), ("15.4", False)])
def test_the_session_is_stopped_unless_a_databricks_runtime_owns_it(runtime, stopped, monkeypatch):
    """On a Databricks cluster (DATABRICKS_RUNTIME_VERSION set) the runtime created the
    SparkContext and the job's tasks share it: the hook leaves it running."""
    from kedro.pipeline import Pipeline

    from mnist_pipeline import hooks as project_hooks

    stops: list[bool] = []

    class _Session:
        class sparkContext:  # mirrors pyspark's attribute name
            master, defaultParallelism = "local[1]", 1

        def stop(self) -> None:
            stops.append(True)

    if runtime is None:
        monkeypatch.delenv("DATABRICKS_RUNTIME_VERSION", raising=False)
    else:
        monkeypatch.setenv("DATABRICKS_RUNTIME_VERSION", runtime)
    monkeypatch.setattr(project_hooks, "create_spark_session", lambda settings: _Session())
    hooks = project_hooks.SparkHooks()
    hooks._settings = spark_settings({"spark.master": "local[1]"})
    hooks.before_pipeline_run(
        run_params={},
        pipeline=Pipeline([_spark_node(["scoring_inputs"])]),
        catalog=_catalog("local"),
    )
    hooks.on_pipeline_error()
    assert stops == ([True] if stopped else [])
    assert hooks._spark is None
