"""A scratch copy of the project for tests that run ``kedro`` commands as a user types them.

``kedro run`` and ``kedro viz`` write beside the project (``.viz/``, ``build/``, relative
MLflow stores); running them in a copy keeps the working tree clean. The copy holds
``pyproject.toml``, ``src/`` and ``conf/`` without personal ``conf/local`` files, and the
environment from :func:`scratch_environment` moves every output location into a tmp folder
(empty MLflow stores copied from the suite's template: ``tests/mlflow_stores.py``).
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

from tests.mlflow_stores import empty_store

IGNORE = shutil.ignore_patterns("__pycache__", "*.pyc", "*.egg-info")


def project_copy(project_root: Path, target: Path) -> Path:
    """Copy the project into ``target`` (created) and return it."""
    target.mkdir(parents=True)
    shutil.copy2(project_root / "pyproject.toml", target)
    shutil.copytree(project_root / "src", target / "src", ignore=IGNORE)
    for env in ("base", "azure", "gcp"):
        shutil.copytree(project_root / "conf" / env, target / "conf" / env, ignore=IGNORE)
    (target / "conf" / "local").mkdir()
    return target


def scratch_environment(scratch: Path, project: Path, mnist_source: Path | None = None) -> dict:
    """``os.environ`` with data, cache and MLflow stores under ``scratch``.

    ``project``'s ``src`` goes first on ``PYTHONPATH`` so the copy's package is the one
    imported, whatever the editable install points at.
    """
    env = {k: v for k, v in os.environ.items() if not k.startswith(("MLFLOW_", "MNIST_"))}
    env.update(
        {
            "KEDRO_DISABLE_TELEMETRY": "1",
            "DO_NOT_TRACK": "1",
            "MNIST_SOURCE": str(mnist_source or scratch / "no-source"),
            "MNIST_DATA_ROOT": str(scratch / "data"),
            "MNIST_CACHE_DIR": str(scratch / "data/01_raw/mnist"),
            "PYTHONPATH": os.pathsep.join(
                [str(project / "src"), os.environ.get("PYTHONPATH", "")]
            ).rstrip(os.pathsep),
        }
    )
    for store in ("", "LOCAL_", "SANDBOX_", "PRODUCTION_"):
        env[f"MLFLOW_{store}TRACKING_URI"] = empty_store(scratch / f"{store.lower()}mlflow.db")
        env[f"MLFLOW_{store}ARTIFACT_LOCATION"] = str(scratch / f"{store.lower()}mlruns")
    env["MLFLOW_PRODUCTION_REGISTRY_URI"] = empty_store(scratch / "production-registry.db")
    return env
