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
