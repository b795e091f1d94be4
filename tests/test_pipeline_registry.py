"""The pipeline registry: one namespaced pipeline per stage, tagged with its workspace."""

from __future__ import annotations

import typing

import pytest
from kedro.framework.project import configure_project, find_pipelines
from kedro.pipeline import Node, Pipeline

from mnist_pipeline.pipeline_registry import SANDBOX_STAGES, namespaced, register_pipelines

# Each node runs on one side of the case: the sandbox (azure) or production (gcp).
WORKSPACE_TAGS = {"azure", "gcp"}


def _identity(x):
    return x


@pytest.fixture(scope="module")
def registered() -> dict[str, Pipeline]:
    configure_project("mnist_pipeline")
    return register_pipelines()


@pytest.fixture(scope="module")
def discovered() -> dict[str, Pipeline]:
    configure_project("mnist_pipeline")
    return find_pipelines(raise_errors=True)


def test_every_stage_is_namespaced_by_its_name(registered):
    for name, pipeline in registered.items():
        if name == "__default__":
            continue
        assert {node.namespace for node in pipeline.nodes} == {name}, name
        assert all(node.name.startswith(f"{name}.") for node in pipeline.nodes), name


def test_namespacing_keeps_dataset_and_parameter_names(registered, discovered):
    for name, pipeline in discovered.items():
        if name == "__default__":  # find_pipelines' own: every pipeline summed
            continue
        assert registered[name].all_inputs() == pipeline.all_inputs(), name
        assert registered[name].all_outputs() == pipeline.all_outputs(), name


def test_every_node_belongs_to_one_workspace(registered):
    for node in registered["__default__"].nodes:
        assert len(node.tags & WORKSPACE_TAGS) == 1, f"{node.name}: tags {sorted(node.tags)}"
    for name, pipeline in registered.items():
        for node in pipeline.nodes:
            assert node.tags & WORKSPACE_TAGS, f"{name}: {node.name} has no azure/gcp tag"


def test_default_is_the_sandbox_lifecycle(registered):
    stages = [name for name in SANDBOX_STAGES if name in registered]
    assert {node.namespace for node in registered["__default__"].nodes} == set(stages)
    assert "ingestion" in stages and "preprocessing" in stages
    assert all("azure" in node.tags for node in registered["__default__"].nodes)


def test_namespaced_leaves_an_already_namespaced_stage_alone():
    stage = Pipeline([Node(_identity, "a", "b", name="copy")], namespace="extra")
    assert namespaced("extra", stage) is stage
    renamed = namespaced("other", Pipeline([Node(_identity, "a", "b", name="copy")]))
    assert [node.name for node in renamed.nodes] == ["other.copy"]
    assert renamed.all_inputs() == {"a"} and renamed.all_outputs() == {"b"}


def test_a_session_builds_its_pipelines_and_catalog_without_tensorflow(project_root, tmp_path):
    """`kedro viz`, the data stages and the project's commands start without TensorFlow
    (about 10 s of CPU): the training code imports it when a node runs, and the model's
    dataset when the model is loaded or saved (kedro-mlflow's hook builds every dataset of
    the catalog when a session starts)."""
    import os
    import subprocess
    import sys

    script = (
        "import sys\n"
        "from kedro.framework.project import configure_project\n"
        "configure_project('mnist_pipeline')\n"
        "from mnist_pipeline.pipeline_registry import register_pipelines\n"
        "assert len(register_pipelines()) > 5\n"
        "from kedro.framework.session import KedroSession\n"
        "with KedroSession.create(project_path='.', env='azure') as session:\n"
        "    catalog = session.load_context().catalog\n"
        "    assert 'trained_model' in catalog\n"
        "print(sorted(m for m in ('tensorflow', 'keras') if m in sys.modules))\n"
    )
    env = dict(os.environ, KEDRO_DISABLE_TELEMETRY="1", MNIST_DATA_ROOT=str(tmp_path / "data"))
    for store in ("", "LOCAL_", "SANDBOX_", "PRODUCTION_"):
        env[f"MLFLOW_{store}TRACKING_URI"] = f"sqlite:///{tmp_path}/mlflow.db"
        env[f"MLFLOW_{store}ARTIFACT_LOCATION"] = str(tmp_path / "mlruns")
    env["MLFLOW_PRODUCTION_REGISTRY_URI"] = f"sqlite:///{tmp_path}/mlflow.db"
    result = subprocess.run(
        [sys.executable, "-c", script],
        cwd=project_root,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert result.stdout.strip().splitlines()[-1] == "[]"


def test_every_nodes_annotations_resolve_at_run_start(registered):
    """Kedro's parameter validator reads each node's type hints when a run starts, before any
    node has imported TensorFlow; one it cannot resolve is a warning in every ``kedro run``."""
    unresolved = {}
    for pipeline in registered.values():
        for node in pipeline.nodes:
            try:
                typing.get_type_hints(node.func)
            except Exception as error:  # what Kedro logs as "Could not extract type hints"
                unresolved[node.name] = repr(error)
    assert not unresolved
