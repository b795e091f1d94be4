"""What a person sees from a real ``kedro run`` (subprocess, scratch copy of the project)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from tests.integration.scratch_project import project_copy, scratch_environment

pytestmark = [pytest.mark.integration, pytest.mark.slow]

PROJECT_ROOT = Path(__file__).resolve().parents[2]
KEDRO = str(Path(sys.executable).parent / "kedro")


def _kedro_run(tmp_path: Path, *args: str, source: Path | None = None):
    project = project_copy(PROJECT_ROOT, tmp_path / "project")
    env = scratch_environment(tmp_path / "scratch", project, source)
    env.pop("SPARK_LOCAL_IP", None)
    env["COLUMNS"] = "200"  # one rich log record per line
    return subprocess.run(
        [KEDRO, "run", *args],
        cwd=project,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )


def test_an_offline_source_ends_with_the_message_and_the_fix_not_a_traceback(tmp_path):
    done = _kedro_run(tmp_path, "--env", "azure", "--pipelines", "ingestion")
    output = done.stdout + done.stderr
    assert done.returncode == 1, output[-3000:]
    assert "Error: DatasetError: mnist_" in done.stderr
    assert "Could not read" in done.stderr
    assert "Fix: " in done.stderr and "MNIST_SOURCE" in done.stderr
    assert "Traceback" not in output
    # The start-up noise the project silences at its source.
    assert "Add type hints to the `predict` method" not in output
    assert "cpu_feature_guard" not in output
    assert "--pipeline is deprecated" not in output
