"""Shared fixtures: small generated IDX files and the real MNIST folder."""

from __future__ import annotations

import contextlib
import fcntl
import os
import shutil
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

# Telemetry must never prompt or phone home from tests (CI has no network).
os.environ.setdefault("KEDRO_DISABLE_TELEMETRY", "1")
os.environ.setdefault("DO_NOT_TRACK", "1")
# Every JVM the tests start (Spark drivers, standalone masters and workers, executors, the
# kedro runs' sessions) compiles with C1 only and collects with one GC thread: a local
# Spark session's start cost 21 s of CPU and 10 s with these, on a 2-core CI machine where
# the suite is CPU-bound. The tests' Spark jobs are small, never long enough for C2 to pay
# off; the behaviour is the same. A caller's own JAVA_TOOL_OPTIONS wins.
os.environ.setdefault("JAVA_TOOL_OPTIONS", "-XX:TieredStopAtLevel=1 -XX:+UseSerialGC")

PROJECT_ROOT = Path(__file__).resolve().parents[1]
REAL_MNIST = Path(os.environ.get("MNIST_TEST_DATA", PROJECT_ROOT.parent / "shared/data/mnist"))

# Fixtures shared across folders, registered once here (not re-imported into conftests):
# a tiny trained model on real MNIST slices, and a registered model + its model server.
pytest_plugins = ["tests.registry.tiny_model", "tests.serving.fixtures"]

# The longest test files (a serial CI run: 390, 180, 175, 140 s...), longest first. `make
# test` runs the suite on every core (pytest-xdist, one file per worker at a time): started
# first, they alternate between the workers, and the run does not end with one worker on a
# long file while the others idle. Any order works (--random-order reorders after this).
LONGEST_FIRST = (
    "integration/cloud/test_cloud_lifecycle.py",
    "integration/cloud/test_cloud_cluster.py",
    "databricks/test_job_tasks.py",
    "integration/test_batch_scoring.py",
    "notebooks/test_notebooks.py",
    "integration/test_serving_deploy.py",
    "integration/test_model_portable.py",
    "integration/test_promotion_servers.py",
    "integration/test_training_cluster.py",
    "integration/test_training_resume.py",
    "integration/test_kedro_viz.py",
    "integration/test_run_messages.py",
    "integration/test_promotion_concurrent.py",
    "integration/test_monitoring.py",
    "training/test_runner.py",
    "integration/test_serving_cli.py",
    "integration/test_serving_server.py",
    "integration/test_promotion_embedded.py",
    "integration/test_data_pipelines.py",
    "integration/test_training_pipeline.py",
)


@pytest.hookimpl(tryfirst=True)
def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Put the longest files first (a stable sort: the rest keep their order)."""
    rank = {name: index for index, name in enumerate(LONGEST_FIRST)}
    items.sort(key=lambda item: rank.get(item.nodeid.split("::")[0].removeprefix("tests/"), 99))


def run_folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """This test run's own temp folder: the pytest-xdist workers' folders are inside it."""
    base = tmp_path_factory.getbasetemp()
    return base.parent if os.environ.get("PYTEST_XDIST_WORKER") else base


def built_once(
    tmp_path_factory: pytest.TempPathFactory, name: str, build: Callable[[Path], None]
) -> Path:
    """A folder that ``build`` fills once per test run, shared by every pytest-xdist worker.

    The first worker to ask builds it under an exclusive file lock; the others wait on the
    lock, then reuse it. A folder left half-built by a failed ``build`` is rebuilt.
    """
    base = run_folder(tmp_path_factory)
    folder, done = base / f"built-once-{name}", base / f"built-once-{name}.done"
    with open(base / f"built-once-{name}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # released when the file closes
        if not done.is_file():
            shutil.rmtree(folder, ignore_errors=True)
            folder.mkdir(parents=True)
            build(folder)
            done.touch()
    return folder


def read_mnist_split(
    folder: Path, prefix: str, start: int = 0, count: int | None = None
) -> dict[str, np.ndarray]:
    """Images and labels ``[start, start + count)`` of a real MNIST split (``train``/``t10k``).

    The one helper that reads the real files in tests: uint8 0–255, no channel axis, as
    ingestion returns them.
    """
    from mnist_pipeline.datasets.idx import parse_idx

    stop = None if count is None else start + count
    images = parse_idx((folder / f"{prefix}-images-idx3-ubyte.gz").read_bytes(), prefix)
    labels = parse_idx((folder / f"{prefix}-labels-idx1-ubyte.gz").read_bytes(), prefix)
    return {
        "images": images[start:stop].astype(np.uint8),
        "labels": labels[start:stop].astype(np.uint8),
    }


@pytest.fixture(autouse=True)
def _isolated_mlflow_state():
    """Leave MLflow's process-wide state as each test found it.

    MLflow keeps the active run and the tracking/registry URIs in module globals;
    a Kedro session (kedro-mlflow) or a failing test can leave a run active that
    points into a store that no longer exists, which would break the next test.
    """
    import mlflow
    from mlflow.tracking import fluent

    before = mlflow.get_tracking_uri(), mlflow.get_registry_uri()
    # mlflow.set_experiment (kedro-mlflow calls it) also exports MLFLOW_EXPERIMENT_ID, which
    # a later test's runs (and its subprocesses) would then look for in another store.
    experiment = os.environ.get("MLFLOW_EXPERIMENT_ID"), fluent._active_experiment_id
    yield
    if experiment[0] is None:
        os.environ.pop("MLFLOW_EXPERIMENT_ID", None)
    else:
        os.environ["MLFLOW_EXPERIMENT_ID"] = experiment[0]
    fluent._active_experiment_id = experiment[1]
    while mlflow.active_run() is not None:
        try:
            mlflow.end_run()
        except Exception:  # its store is gone: forget the run without ending it
            with contextlib.suppress(IndexError):
                fluent._active_run_stack.get().pop()
    mlflow.set_tracking_uri(before[0])
    mlflow.set_registry_uri(before[1])


@pytest.fixture(scope="session", autouse=True)
def _mlflow_store_template(tmp_path_factory: pytest.TempPathFactory) -> None:
    """Where ``tests/mlflow_stores.py`` builds its template store (only when one is asked for)."""
    from tests import mlflow_stores

    mlflow_stores.use_tmp_path_factory(tmp_path_factory)


@pytest.fixture(scope="session")
def project_root() -> Path:
    return PROJECT_ROOT


@pytest.fixture(scope="session")
def real_mnist_dir() -> Path:
    """The folder with the four canonical MNIST files (``../shared/data/mnist``).

    In CI the folder must be there: the integration tests that need it fail
    rather than skip, so a green CI always means they ran.
    """
    if not (REAL_MNIST / "train-images-idx3-ubyte.gz").is_file():
        message = f"real MNIST files not found in {REAL_MNIST} (set MNIST_TEST_DATA)"
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)
    return REAL_MNIST


def make_split(num_images: int, seed: int = 0, size: int = 28) -> dict[str, np.ndarray]:
    """A small random MNIST-like split with every digit present."""
    rng = np.random.default_rng(seed)
    labels = (np.arange(num_images) % 10).astype(np.uint8)
    rng.shuffle(labels)
    images = rng.integers(0, 256, size=(num_images, size, size), dtype=np.uint8)
    return {"images": images, "labels": labels}


@pytest.fixture
def small_split() -> dict[str, np.ndarray]:
    return make_split(200)
