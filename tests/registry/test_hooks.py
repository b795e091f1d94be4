"""The run's name (registry/hooks.py): environment, pipeline(s), commit."""

from __future__ import annotations

from mnist_pipeline.registry.hooks import run_label


def test_run_label_names_env_pipeline_and_commit():
    """(moved from tests/test_run_summary.py with run_label)"""
    label = run_label({"env": "azure", "pipeline_names": ["__default__"], "project_path": "."})
    env, pipeline, commit = label.split(" · ")
    assert (env, pipeline) == ("azure", "lifecycle")
    assert commit == "unknown" or len(commit.split("+")[0]) == 7
    assert run_label({"env": None, "pipeline_names": ["deploy"]}).startswith("local · deploy · ")
