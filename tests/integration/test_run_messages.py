"""What a person sees from a real ``kedro run`` (subprocess, scratch copy of the project)."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.integration.scratch_project import project_copy, scratch_environment

pytestmark = [pytest.mark.integration, pytest.mark.slow]

PROJECT_ROOT = Path(__file__).resolve().parents[2]
KEDRO = str(Path(sys.executable).parent / "kedro")


def _kedro_run(tmp_path: Path, *args: str, source: Path | None = None, before=None):
    project = project_copy(PROJECT_ROOT, tmp_path / "project")
    shutil.copy2(PROJECT_ROOT / "conf" / "logging.yml", project / "conf" / "logging.yml")
    (project / "logs").mkdir()
    env = scratch_environment(tmp_path / "scratch", project, source)
    env.pop("SPARK_LOCAL_IP", None)
    env["COLUMNS"] = "200"  # one rich log record per line
    if before is not None:
        before(env)
    done = subprocess.run(
        [KEDRO, "run", *args],
        cwd=project,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    return done, env, project


def test_an_offline_source_ends_with_the_message_and_the_fix_not_a_traceback(tmp_path):
    done, _, _ = _kedro_run(tmp_path, "--env", "azure", "--pipelines", "ingestion")
    output = done.stdout + done.stderr
    assert done.returncode == 1, output[-3000:]
    assert "Error: DatasetError: mnist_" in done.stderr
    assert "Could not read" in done.stderr
    assert "Fix: " in done.stderr and "MNIST_SOURCE" in done.stderr
    assert "Traceback" not in output
    # The start-up noise the project silences at its source.
    assert "Add type hints to the `predict` method" not in output
    assert "cpu_feature_guard" not in output
    assert "KedroDeprecationWarning" not in output


def test_a_stage_says_its_outcome_and_the_run_is_named_and_tagged_for_the_ui(
    tmp_path, real_mnist_dir
):
    """Real MNIST ingestion into a sandbox store whose experiment already exists, untagged."""
    from mlflow import MlflowClient

    def existing_experiment(env):
        MlflowClient(env["MLFLOW_SANDBOX_TRACKING_URI"]).create_experiment(
            "mnist_pipeline", artifact_location=env["MLFLOW_SANDBOX_ARTIFACT_LOCATION"]
        )

    done, env, project = _kedro_run(
        tmp_path,
        "--env",
        "azure",
        "--pipelines",
        "ingestion",
        source=real_mnist_dir,
        before=existing_experiment,
    )
    output = done.stdout + done.stderr
    assert done.returncode == 0, output[-3000:]
    assert "ingestion: 60,000 train + 10,000 test images verified" in output
    client = MlflowClient(env["MLFLOW_SANDBOX_TRACKING_URI"])
    experiment = client.get_experiment_by_name("mnist_pipeline")
    # MLflow 3's UI opens an experiment of this kind on its runs table (not GenAI's overview).
    assert experiment.tags.get("mlflow.experimentKind") == "custom_model_development"
    assert experiment.tags.get("workspace") == "sandbox"
    (run,) = client.search_runs([experiment.experiment_id])
    env_name, pipeline, _commit = run.info.run_name.split(" · ")
    assert (env_name, pipeline) == ("azure", "ingestion")
    # The run log file of conf/logging.yml holds the same outcome line.
    assert "ingestion: 60,000 train" in (project / "logs" / "info.log").read_text()
