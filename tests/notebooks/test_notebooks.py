"""Every notebook under ``notebooks/`` runs top to bottom in CI, and is committed without outputs.

Adding ``notebooks/NN_name.ipynb`` is enough to have it tested. Each notebook runs in the
kernel that ``kedro jupyter setup`` creates (``Kedro (mnist_pipeline)``: IPython with the
``kedro.ipython`` extension, as ``kedro jupyter notebook`` opens it), from ``notebooks/``,
against the real MNIST files, with every output location (data, MLflow stores) in a tmp
folder. The executed copy is kept as a test artifact in ``test-artifacts/notebooks/``.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient

from tests.mlflow_stores import empty_store

pytestmark = pytest.mark.integration

PROJECT_ROOT = Path(__file__).resolve().parents[2]
NOTEBOOKS = sorted((PROJECT_ROOT / "notebooks").glob("*.ipynb"))
ARTIFACTS = PROJECT_ROOT / "test-artifacts" / "notebooks"
KERNEL = "kedro_mnist_pipeline"  # the name `kedro jupyter setup` gives the project's kernel
CELL_TIMEOUT_S = 300


def _ids(path: Path) -> str:
    return path.stem


def test_there_are_notebooks():
    assert [p.name for p in NOTEBOOKS][:1] == ["01_explore_mnist.ipynb"]


@pytest.mark.parametrize("path", NOTEBOOKS, ids=_ids)
def test_committed_without_outputs(path):
    notebook = nbformat.read(path, as_version=4)
    nbformat.validate(notebook)
    dirty = [
        index
        for index, cell in enumerate(notebook.cells)
        if cell.cell_type == "code" and (cell.outputs or cell.execution_count is not None)
    ]
    assert not dirty, f"{path.name}: cells {dirty} keep outputs (run nbstripout, see pre-commit)"
    assert "widgets" not in notebook.metadata, f"{path.name}: widget state in metadata"


@pytest.fixture(scope="module")
def kedro_kernel(tmp_path_factory) -> Iterator[str]:
    """The project's kernel, created by ``kedro jupyter setup`` in a private Jupyter data dir."""
    data_dir = tmp_path_factory.mktemp("jupyter-data")
    env = dict(os.environ, JUPYTER_DATA_DIR=str(data_dir), KEDRO_DISABLE_TELEMETRY="1")
    kedro = str(Path(sys.executable).with_name("kedro"))
    result = subprocess.run(
        [kedro, "jupyter", "setup"],
        cwd=PROJECT_ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    spec = json.loads((data_dir / "kernels" / KERNEL / "kernel.json").read_text())
    assert spec["argv"][-2:] == ["--ext", "kedro.ipython"], spec["argv"]
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("JUPYTER_DATA_DIR", str(data_dir))
        yield KERNEL


@pytest.mark.slow
@pytest.mark.parametrize("path", NOTEBOOKS, ids=_ids)
def test_notebook_runs(path, kedro_kernel, real_mnist_dir, tmp_path, monkeypatch):
    scratch = tmp_path / "scratch"
    monkeypatch.setenv("KEDRO_DISABLE_TELEMETRY", "1")
    monkeypatch.setenv("MNIST_SOURCE", str(real_mnist_dir))
    monkeypatch.setenv("MNIST_DATA_ROOT", str(scratch / "data"))
    monkeypatch.setenv("MNIST_CACHE_DIR", str(scratch / "data/01_raw/mnist"))
    for store in ("", "LOCAL_", "SANDBOX_", "PRODUCTION_"):
        monkeypatch.setenv(f"MLFLOW_{store}TRACKING_URI", empty_store(scratch / f"{store}mlflow.db"))
        monkeypatch.setenv(f"MLFLOW_{store}ARTIFACT_LOCATION", str(scratch / f"{store}mlruns"))
    monkeypatch.setenv("MLFLOW_PRODUCTION_REGISTRY_URI", empty_store(scratch / "production.db"))

    notebook = nbformat.read(path, as_version=4)
    client = NotebookClient(
        notebook,
        kernel_name=kedro_kernel,
        timeout=CELL_TIMEOUT_S,
        startup_timeout=CELL_TIMEOUT_S,  # the kernel loads Kedro first: slow on a busy machine
        resources={"metadata": {"path": str(path.parent)}},
    )
    try:
        client.execute()  # raises CellExecutionError with the failing cell and traceback
    finally:
        ARTIFACTS.mkdir(parents=True, exist_ok=True)
        nbformat.write(notebook, ARTIFACTS / path.name)

    outputs = [output for cell in notebook.cells for output in cell.get("outputs", [])]
    assert not [o for o in outputs if o.output_type == "error"]
    assert any("image/png" in o.get("data", {}) for o in outputs), "no figure was drawn"
    for cell in notebook.cells:  # every figure a node returns is shown, not dropped
        if cell.cell_type == "code" and "plot_class_balance(summary)" in cell.source:
            assert any("image/png" in o.get("data", {}) for o in cell.outputs), cell.source
    assert not (path.parent / "data").exists(), "a notebook wrote into notebooks/data/"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=_ids)
def test_notebook_works_from_the_project_root_wherever_it_was_opened(path):
    """Relative data/ and mlruns/ locations must resolve against the project root.

    Opened from ``notebooks/``, a notebook would otherwise miss the ``data/01_raw/mnist``
    cache offline and download a second copy into ``notebooks/data/``.
    """
    notebook = nbformat.read(path, as_version=4)
    setup = next(cell.source for cell in notebook.cells if cell.cell_type == "code")
    chdir = setup.find("os.chdir(find_kedro_project(Path.cwd()))")
    assert 0 <= chdir < setup.find("%reload_kedro"), setup
