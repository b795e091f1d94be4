"""A throwaway copy of the Kedro project for end-to-end runs of evaluation + promotion.

The copy holds ``pyproject.toml`` and ``conf/`` (the package itself is the installed one), so
relative defaults such as ``sqlite:///mlruns/sandbox.db`` land in the copy, never in the
working tree. The inputs of evaluation (``trained_model``, ``training_history``,
``mnist_test``, ``model_input_fingerprint``) are saved through the project's own catalog, so
they land wherever the catalog says.
"""

from __future__ import annotations

import contextlib
import os
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import mlflow
import yaml

from tests.conftest import PROJECT_ROOT

# Issue 3's contract for its outputs, used only while conf/base has no catalog_training.yml.
STAND_IN_TRAINING_CATALOG = {
    "trained_model": {
        "type": "mnist_pipeline.datasets.KerasModelDataset",
        "filepath": "${globals:data_root}/06_models/mnist_cnn.keras",
    },
    "training_history": {
        "type": "json.JSONDataset",
        "filepath": "${globals:data_root}/06_models/training_history.json",
    },
}


def _defines(conf_base: Path, name: str) -> bool:
    for path in conf_base.glob("catalog*.yml"):
        if name in (yaml.safe_load(path.read_text()) or {}):
            return True
    return False


def make_project(root: Path) -> Path:
    """Copy ``pyproject.toml`` and ``conf/`` (no personal ``conf/local``) under ``root``."""
    project = root / "project"
    project.mkdir(parents=True)
    shutil.copy(PROJECT_ROOT / "pyproject.toml", project)
    shutil.copytree(PROJECT_ROOT / "conf", project / "conf", ignore=shutil.ignore_patterns("local"))
    (project / "conf" / "local").mkdir()
    (project / "src").mkdir()  # kedro wants the folder; the package is the installed one
    base = project / "conf" / "base"
    missing = {k: v for k, v in STAND_IN_TRAINING_CATALOG.items() if not _defines(base, k)}
    if missing:
        (base / "catalog_training_stand_in.yml").write_text(yaml.safe_dump(missing))
    return project


@contextlib.contextmanager
def mlflow_state() -> Iterator[None]:
    """Restore MLflow's process-wide URIs and end any run a Kedro run left active."""
    before = mlflow.get_tracking_uri(), mlflow.get_registry_uri()
    try:
        yield
    finally:
        while mlflow.active_run() is not None:
            mlflow.end_run()
        mlflow.set_tracking_uri(before[0])
        mlflow.set_registry_uri(before[1])


def session(project: Path, env: str, runtime_params: dict[str, Any] | None = None):
    from kedro.framework.session import KedroSession
    from kedro.framework.startup import bootstrap_project

    bootstrap_project(project)
    return KedroSession.create(project_path=project, env=env, runtime_params=runtime_params)


@contextlib.contextmanager
def inside(project: Path) -> Iterator[None]:
    """Work from the project's folder (where ``kedro run`` is started) for a block."""
    cwd = Path.cwd()
    os.chdir(project)
    try:
        yield
    finally:
        os.chdir(cwd)


def seed_inputs(project: Path, env: str, inputs: dict[str, Any]) -> None:
    """Save evaluation's inputs through the project's catalog (as upstream stages would)."""
    with inside(project), mlflow_state(), session(project, env) as kedro_session:
        catalog = kedro_session.load_context().catalog
        for name, value in inputs.items():
            catalog.save(name, value)


def seed_trained_candidate(
    project: Path, env: str, tiny_model: tuple[Any, Any], test_split: Any, fingerprint: str
) -> None:
    """Seed what evaluation + promotion read: the trained model, its history, the test set."""
    model, history = tiny_model
    seed_inputs(
        project,
        env,
        {
            "trained_model": model,
            "training_history": history,
            "mnist_test": test_split,
            "model_input_fingerprint": {"model_input": fingerprint, "splits": {}},
        },
    )


def run(
    project: Path,
    env: str,
    pipelines: tuple[str, ...] = ("evaluation", "promotion"),
    runtime_params: dict[str, Any] | None = None,
) -> None:
    """``kedro run --env <env> --pipelines ...`` in the copy, from the copy's folder."""
    with inside(project), mlflow_state(), session(project, env, runtime_params) as kedro_session:
        kedro_session.run(pipeline_names=list(pipelines))
