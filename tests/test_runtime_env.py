"""Process defaults applied before TensorFlow, MLflow and Spark start (runtime_env)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from mnist_pipeline.runtime_env import (
    apply_defaults,
    default_spark_local_ip,
    is_loopback_master,
    venv_bin_on_path,
)

PROJECT_ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.parametrize(
    "master",
    ["local", "local[*]", "local[2]", "local-cluster[2,1,1024]", "spark://127.0.0.1:7077"],
)
def test_local_and_loopback_masters_get_the_loopback_default(master):
    environ: dict[str, str] = {}
    assert is_loopback_master(master)
    assert default_spark_local_ip(master, environ) is True
    assert environ == {"SPARK_LOCAL_IP": "127.0.0.1"}


@pytest.mark.parametrize(
    "master",
    [
        "spark://10.0.0.4:7077",
        "spark://spark-master.internal:7077",
        "spark://127.0.0.1.example.com:7077",
        "yarn",
        "k8s://https://10.0.0.1:6443",
        "",
    ],
)
def test_a_real_cluster_is_never_given_loopback(master):
    environ: dict[str, str] = {}
    assert not is_loopback_master(master)
    assert default_spark_local_ip(master, environ) is False
    assert environ == {}


def test_a_value_already_set_is_kept():
    environ = {"SPARK_LOCAL_IP": "10.1.2.3"}
    assert default_spark_local_ip("local[*]", environ) is False
    assert environ == {"SPARK_LOCAL_IP": "10.1.2.3"}


def test_defaults_never_override_the_user():
    environ = {"TF_CPP_MIN_LOG_LEVEL": "0", "PATH": "/usr/bin"}
    apply_defaults(environ)
    assert environ["TF_CPP_MIN_LOG_LEVEL"] == "0"
    assert environ["PATH"].split(os.pathsep) == [str(Path(sys.executable).parent), "/usr/bin"]
    apply_defaults(environ)  # idempotent: the venv's bin/ is not added twice
    assert environ["PATH"].split(os.pathsep).count(str(Path(sys.executable).parent)) == 1
    fresh: dict[str, str] = {}
    apply_defaults(fresh)
    assert fresh["TF_CPP_MIN_LOG_LEVEL"] == "1"
    assert fresh["MLFLOW_LOGGING_LEVEL"] == "WARNING"


def test_venv_tools_are_found_without_activating_the_venv():
    """``kedro mlflow ui`` runs ``mlflow``, ``mlflow models serve`` runs ``uvicorn``: by name."""
    import shutil

    environ = {"PATH": "/usr/bin:/bin"}
    venv_bin_on_path(environ)
    for tool in ("mlflow", "uvicorn"):
        found = shutil.which(tool, path=environ["PATH"])
        assert found is not None and Path(found).parent == Path(sys.executable).parent


@pytest.mark.slow
@pytest.mark.integration
def test_a_local_spark_session_starts_without_the_loopback_hint(tmp_path):
    """The project's one Spark builder, in a process with SPARK_LOCAL_IP unset."""
    script = (
        "import os\n"
        "from mnist_pipeline.hooks import create_spark_session, spark_settings\n"
        "spark = create_spark_session(spark_settings({'spark.master': 'local[1]',"
        " 'spark.ui.enabled': False}))\n"
        "print('SPARK_LOCAL_IP=' + os.environ.get('SPARK_LOCAL_IP', ''))\n"
        "spark.stop()\n"
    )
    env = {k: v for k, v in os.environ.items() if k != "SPARK_LOCAL_IP"}
    done = subprocess.run(
        [sys.executable, "-c", script],
        check=False,
        capture_output=True,
        text=True,
        env=env,
        cwd=tmp_path,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    assert "SPARK_LOCAL_IP=127.0.0.1" in done.stdout
    assert "loopback address" not in done.stderr
    assert "Set SPARK_LOCAL_IP" not in done.stderr
