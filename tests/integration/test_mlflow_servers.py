"""The MLflow server fixture: two real servers, separate stores, stopped as process groups."""

from __future__ import annotations

import subprocess

import mlflow
import pytest

pytestmark = pytest.mark.integration


def _live_group_members(pgid: int) -> list[str]:
    """Processes of the group that are not zombies (a reaped-later zombie holds nothing)."""
    out = subprocess.run(
        ["ps", "-o", "stat=,cmd=", "-g", str(pgid)], capture_output=True, text=True, check=False
    ).stdout
    return [line for line in out.splitlines() if line.strip() and not line.strip().startswith("Z")]


def test_two_servers_keep_separate_stores_and_stop_as_a_group(mlflow_servers, tmp_path):
    sandbox, production = mlflow_servers.sandbox, mlflow_servers.production
    assert sandbox.port != production.port
    assert sandbox.is_healthy() and production.is_healthy()

    (tmp_path / "note.txt").write_text("hello")
    client = mlflow.MlflowClient(tracking_uri=sandbox.url)
    run = client.create_run(client.create_experiment("only-in-sandbox"))
    client.log_artifact(run.info.run_id, str(tmp_path / "note.txt"))
    # The artifact went over HTTP into the sandbox's own folder, not into production's.
    assert list(sandbox.artifacts_destination.rglob("note.txt"))
    assert not list(production.artifacts_destination.rglob("note.txt"))
    assert (
        mlflow.MlflowClient(tracking_uri=production.url).get_experiment_by_name("only-in-sandbox")
        is None
    )

    group = sandbox.process.pid
    assert _live_group_members(group)  # the server and its uvicorn worker
    sandbox.stop()
    assert not sandbox.is_healthy()
    assert _live_group_members(group) == []
    assert production.is_healthy()
