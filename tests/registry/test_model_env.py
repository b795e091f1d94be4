"""The environment of the model's fresh-environment subprocess (registry/model_env.py)."""

from __future__ import annotations

from pathlib import Path

from mnist_pipeline.registry.model_env import tool_env


def test_the_fresh_environment_gets_no_project_path_and_no_callers_experiment(monkeypatch):
    """kedro-mlflow's `mlflow.set_experiment` exports MLFLOW_EXPERIMENT_ID; a child that
    inherits it refuses to start when that experiment is not in the store it sees."""
    for name, value in {
        "PYTHONPATH": "/project/src",
        "MLFLOW_EXPERIMENT_ID": "1",
        "MLFLOW_RUN_ID": "abc",
        "MLFLOW_TRACKING_URI": "sqlite:///x.db",
    }.items():
        monkeypatch.setenv(name, value)
    env = tool_env(Path("/envs"))
    assert not {"PYTHONPATH", "MLFLOW_EXPERIMENT_ID", "MLFLOW_RUN_ID"} & set(env)
    assert env["MLFLOW_TRACKING_URI"] == "sqlite:///x.db"  # the rest is passed on
    assert env["MLFLOW_ENV_ROOT"] == "/envs"
