"""The sandbox job's tasks, run exactly as the Databricks job runs them, on this machine.

The job cluster's Python is `.bundle-venv/` (built by `make install`, never here): a fresh
venv whose Spark/TensorFlow/MLflow are the "runtime" and whose project is the wheel. Each
task's entry point gets the task's own parameters from resources/ (the training stage in
distributed mode on two local slots, via the job parameters), with the cluster's
environment; only what names Databricks services is pointed at local stand-ins: a local
Spark master, SQLite MLflow stores, a scratch data root, a slice of real MNIST, and the
configuration tarball that `kedro package` makes.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import tarfile
import time
from pathlib import Path

import pytest
import yaml

from mnist_pipeline.databricks import bundle as b
from tests.conftest import read_mnist_split
from tests.idx_files import write_split
from tests.mlflow_stores import empty_store

pytestmark = [pytest.mark.integration, pytest.mark.slow]

TRAIN, TEST = 1200, 300  # a slice of real MNIST keeps the run short


def _venv(project_root: Path) -> tuple[Path, dict]:
    record = project_root / ".bundle-venv" / "installed.json"
    if not record.is_file():
        pytest.fail(".bundle-venv/ is missing: `make install` builds it (tests never do)")
    return project_root / ".bundle-venv", json.loads(record.read_text())


def test_wheel_on_the_runtime_installs_no_spark_tensorflow_or_mlflow(project_root):
    _, record = _venv(project_root)
    installed = {name.lower().replace("_", "-") for name in record["installed"]}
    assert "mnist-pipeline" in installed and "kedro" in installed
    assert not installed & {
        "pyspark",
        "tensorflow",
        "tensorflow-cpu",
        "keras",
        "mlflow",
        "mlflow-skinny",
    }


def _slice(source: Path, target: Path) -> dict[str, str]:
    target.mkdir(parents=True)
    return {
        **write_split(target, "train", read_mnist_split(source, "train", count=TRAIN)),
        **write_split(target, "t10k", read_mnist_split(source, "t10k", count=TEST)),
    }


def _conf_tarball(project_root: Path, target: Path, sums: dict[str, str]) -> Path:
    """conf/ as `kedro package` packs it (no local/), for this slice of MNIST."""
    conf = target / "conf"
    shutil.copytree(project_root / "conf", conf, ignore=shutil.ignore_patterns("local"))
    (conf / "local").mkdir()
    globals_path = conf / "base" / "globals.yml"
    config = yaml.safe_load(globals_path.read_text())
    config["mnist"]["sha256"] = sums
    globals_path.write_text(yaml.safe_dump(config))
    # The slice's sizes go into base: an env parameters file would make Kedro replace whole
    # top-level blocks, `--params training.*` included (see docs/databricks.md).
    for stage, edit in (
        (
            "ingestion",
            lambda p: (p["train"].update(num_images=TRAIN), p["test"].update(num_images=TEST)),
        ),
        ("preprocessing", lambda p: p.update(validation_size=0.1)),
    ):
        path = conf / "base" / f"parameters_{stage}.yml"
        parameters = yaml.safe_load(path.read_text())
        edit(parameters[stage])
        path.write_text(yaml.safe_dump(parameters))
    tarball = target / "dist" / "conf-mnist_pipeline.tar.gz"
    tarball.parent.mkdir(parents=True)
    with tarfile.open(tarball, "w:gz") as tar:
        tar.add(conf, arcname="conf")
    shutil.rmtree(conf)
    return tarball


def test_sandbox_job_tasks_run_from_the_wheel(project_root, real_mnist_dir, tmp_path):
    venv, _ = _venv(project_root)
    files = tmp_path / "files"  # ${workspace.file_path}: where the bundle syncs to
    _conf_tarball(project_root, files, _slice(real_mnist_dir, tmp_path / "mnist"))
    data = tmp_path / "data"
    overrides = {
        "use_gpu": "false",  # no GPU here; the GPU settings are checked in test_bundle.py
        "num_slots": "2",
        "training_mode": "distributed",
        "epochs": "1",
        "batch_size": "64",
        "data_root": str(data),
        "mnist_source": str(tmp_path / "mnist"),
    }
    job = b.resolve(b.load(project_root), "azure", overrides, {"file_path": str(files)})
    job = job["jobs"][b.SANDBOX_JOB]
    defaults = {p["name"]: str(p["default"]) for p in job["parameters"]}
    clusters = {c["job_cluster_key"]: c["new_cluster"] for c in job["job_clusters"]}

    scratch = tmp_path / "mlflow"
    base = {
        k: v for k, v in os.environ.items() if not k.startswith(("MLFLOW_", "MNIST_", "PYTHONPATH"))
    }
    for task in job["tasks"]:
        env = dict(base) | clusters[task["job_cluster_key"]]["spark_env_vars"]
        env |= {  # the Databricks services, stood in for
            "SPARK_MASTER": "local[2]",
            "MLFLOW_SANDBOX_TRACKING_URI": empty_store(scratch / "sandbox.db"),
            "MLFLOW_SANDBOX_ARTIFACT_LOCATION": str(scratch / "sandbox-artifacts"),
            "MLFLOW_SANDBOX_EXPERIMENT": "mnist_pipeline",
            "MLFLOW_PRODUCTION_TRACKING_URI": empty_store(scratch / "production.db"),
            "MLFLOW_PRODUCTION_REGISTRY_URI": empty_store(scratch / "production.db"),
            "MLFLOW_PRODUCTION_ARTIFACT_LOCATION": str(scratch / "production-artifacts"),
            "MLFLOW_PRODUCTION_MODEL_NAME": "mnist_cnn",
            "MNIST_GATE_MODE": "disabled",  # a 1-epoch model on a slice is no 99 % model
        }
        wheel_task = task["python_wheel_task"]
        arguments = [
            a.replace("{{job.parameters.", "{{").replace("{{", "{").replace("}}", "}")
            for a in wheel_task["parameters"]
        ]
        arguments = [a.format(**defaults) for a in arguments]
        command = [str(venv / "bin" / wheel_task["entry_point"]), *arguments]
        started = time.perf_counter()
        result = subprocess.run(
            command, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=600, check=False
        )
        where = [line.strip() for line in result.stderr.splitlines() if ".py:" in line]
        assert result.returncode == 0, (task["task_key"], where[-12:], result.stderr[-3000:])
        print(f"task {task['task_key']}: {time.perf_counter() - started:.1f} s")

    summary = json.loads((data / "08_reporting" / "training_summary.json").read_text())
    assert summary["mode"] == "distributed" and summary["num_workers"] == 2
    assert (data / "06_models" / "mnist_cnn.keras").is_file()
