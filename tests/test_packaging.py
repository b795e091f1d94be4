"""``kedro package``: the project as a wheel whose ``mnist-pipeline`` entry point runs a pipeline.

What ``kedro package`` does, offline: build the wheel with the project's own build backend
(``python -m build --wheel``, here without build isolation so nothing is downloaded) and
pack ``conf/`` without ``local/*.yml`` into ``conf-mnist_pipeline.tar.gz``. The wheel is
then installed on its own (``pip install --no-deps --target``; its dependencies are the
project environment's) and its console script runs ``--env azure --pipelines ingestion``
from a folder that holds only the configuration tarball, the way a job on a cluster runs it.
"""

from __future__ import annotations

import csv
import os
import shutil
import subprocess
import sys
import tarfile
import zipfile
from pathlib import Path

import numpy as np
import pytest
import yaml

from tests.conftest import make_split
from tests.idx_files import write_split

pytestmark = pytest.mark.integration

PACKAGE = "mnist_pipeline"
TIMEOUT_S = 600


def _conf_tarball(project_root: Path, target: Path, edit) -> Path:
    """``conf/`` as ``kedro package`` packs it (no ``local/*.yml``), after ``edit(conf_dir)``."""
    conf = target / "conf"
    shutil.copytree(project_root / "conf", conf, ignore=shutil.ignore_patterns("*.yml"))
    for path in (project_root / "conf").rglob("*.yml"):
        relative = path.relative_to(project_root / "conf")
        if relative.parts[0] != "local":
            (conf / relative).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(path, conf / relative)
    edit(conf)
    tarball = target / f"conf-{PACKAGE}.tar.gz"
    with tarfile.open(tarball, "w:gz") as tar:
        tar.add(conf, arcname="conf")
    shutil.rmtree(conf)
    return tarball


@pytest.fixture(scope="module")
def wheel(tmp_path_factory, project_root: Path) -> Path:
    """The project's wheel, built from a scratch copy of the sources (the tree stays clean)."""
    source = tmp_path_factory.mktemp("package-source")
    for name in ("pyproject.toml", "README.md"):
        shutil.copy2(project_root / name, source)
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc", "*.egg-info")
    shutil.copytree(project_root / "src", source / "src", ignore=ignore)
    command = [sys.executable, "-m", "build", "--wheel", "--no-isolation"]
    command += ["--skip-dependency-check", "--outdir", str(source / "dist"), str(source)]
    result = subprocess.run(command, check=False, capture_output=True, text=True, timeout=TIMEOUT_S)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    (built,) = (source / "dist").glob(f"{PACKAGE}-*-py3-none-any.whl")
    return built


def test_wheel_holds_the_package_and_its_entry_point(wheel, project_root):
    with zipfile.ZipFile(wheel) as archive:
        names = set(archive.namelist())
        (entry_points,) = [n for n in names if n.endswith(".dist-info/entry_points.txt")]
        scripts = archive.read(entry_points).decode()
    assert "mnist-pipeline = mnist_pipeline.__main__:main" in scripts
    stages = [
        p.name for p in (project_root / "src" / PACKAGE / "pipelines").iterdir() if p.is_dir()
    ]
    for stage in stages:
        if (project_root / "src" / PACKAGE / "pipelines" / stage / "pipeline.py").is_file():
            assert f"{PACKAGE}/pipelines/{stage}/pipeline.py" in names, stage
    assert f"{PACKAGE}/py.typed" in names
    assert not [n for n in names if n.startswith(("conf/", "tests/")) or "credentials" in n]


@pytest.mark.slow
def test_entry_point_runs_a_pipeline_with_env(wheel, project_root, tmp_path):
    # The installed wheel alone, on top of the project's environment for its dependencies.
    site = tmp_path / "site"
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "install",
            "--quiet",
            "--no-deps",
            "--no-index",
            "--target",
            str(site),
            str(wheel),
        ],
        check=True,
        timeout=TIMEOUT_S,
    )
    script = site / "bin" / "mnist-pipeline"
    assert script.is_file(), sorted(p.name for p in site.iterdir())

    # Small MNIST-like IDX files, and the configuration that describes them.
    source = tmp_path / "source"
    source.mkdir()
    train, test = make_split(200, seed=1), make_split(50, seed=2)
    sums = write_split(source, "train", train) | write_split(source, "t10k", test)

    def edit(conf: Path) -> None:
        globals_path = conf / "base" / "globals.yml"
        config = yaml.safe_load(globals_path.read_text())
        config["mnist"]["sha256"] = sums
        globals_path.write_text(yaml.safe_dump(config))
        # Only the azure environment accepts 200 training images: the run below
        # succeeds only if `--env azure` reached the configuration.
        (conf / "azure" / "parameters_ingestion.yml").write_text(
            "ingestion:\n  train:\n    name: train\n    num_images: 200\n"
            "    min_images_per_class: 1\n"
            # an environment's top-level key replaces base's whole block: the test split too
            "  test:\n    name: test\n    num_images: 10000\n    min_images_per_class: 1\n"
        )

    job = tmp_path / "job"
    job.mkdir()
    conf_tarball = _conf_tarball(project_root, job, edit)

    scratch = tmp_path / "scratch"
    env = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith(("MLFLOW_", "MNIST_", "PYTHONPATH"))
    }
    env.update(
        {
            "PYTHONPATH": str(site),
            "KEDRO_DISABLE_TELEMETRY": "1",
            "DO_NOT_TRACK": "1",
            "MNIST_SOURCE": str(source),
            "MNIST_DATA_ROOT": str(scratch / "data"),
            "MNIST_CACHE_DIR": str(scratch / "raw"),
        }
    )
    for store in ("", "LOCAL_", "SANDBOX_"):
        env[f"MLFLOW_{store}TRACKING_URI"] = f"sqlite:///{scratch}/mlflow.db"
        env[f"MLFLOW_{store}ARTIFACT_LOCATION"] = str(scratch / "mlruns")
    scratch.mkdir()

    where = subprocess.run(
        [sys.executable, "-c", "import mnist_pipeline; print(mnist_pipeline.__file__)"],
        cwd=job,
        env=env,
        capture_output=True,
        text=True,
        check=True,
    )
    assert where.stdout.strip().startswith(str(site)), where.stdout

    command = [str(script), "--env", "azure", "--pipelines", "ingestion"]
    command += ["--conf-source", str(conf_tarball), "--params", "ingestion.test.num_images=50"]
    result = subprocess.run(
        command, check=False, cwd=job, env=env, capture_output=True, text=True, timeout=TIMEOUT_S
    )
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-4000:]

    data = scratch / "data"
    with (data / "08_reporting" / "mnist_class_summary.csv").open() as handle:
        rows = list(csv.DictReader(handle))
    assert [int(row["train_images"]) for row in rows] == np.bincount(train["labels"]).tolist()
    assert [int(row["test_images"]) for row in rows] == np.bincount(test["labels"]).tolist()
    assert (data / "08_reporting" / "mnist_samples.png").read_bytes()[:4] == b"\x89PNG"
    assert sorted(p.name for p in (scratch / "raw").iterdir()) == sorted(sums)
