"""Build the stand-in of a Databricks job cluster's Python: a fresh venv with the wheel.

``make install`` runs this (``make bundle-venv``); tests/databricks then run the job's
tasks with it exactly as the job runs them. A Databricks ML runtime brings Spark,
TensorFlow, MLflow and the scientific stack preinstalled, and a job installs the project's
wheel on top. Here:

1. a fresh venv (``.bundle-venv/``, git-ignored) is created;
2. its "runtime" layer is the laptop venv's site-packages *without* the project and Kedro
   (``runtime/``: one symlink per package, on ``sys.path`` after the venv's own packages,
   through a ``.pth`` file) — so Spark, TensorFlow and MLflow are the runtime's;
3. the wheel is built from the sources (``python -m build --wheel``) and installed with
   ``pip`` into the venv with its core dependencies, constrained by requirements.lock —
   pip installs what the runtime lacks (Kedro and its plugins) and must not reinstall
   Spark, TensorFlow or MLflow: ``installed.json`` records what it installed, and the
   tests check it.
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import sysconfig
import tempfile
import venv
from pathlib import Path

# Not part of the stand-in runtime: the project itself and what a Databricks runtime lacks.
NOT_IN_RUNTIME = ("mnist_pipeline", "__editable__", "kedro", "_mnist_pipeline", "pip", "setuptools")


def _site_packages(python: Path) -> Path:
    out = subprocess.run(
        [str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
        check=True,
        capture_output=True,
        text=True,
    )
    return Path(out.stdout.strip())


def build_wheel(project: Path, outdir: Path) -> Path:
    """The project's wheel, built from a scratch copy of the sources (the tree stays clean)."""
    with tempfile.TemporaryDirectory() as scratch:
        source = Path(scratch)
        for name in ("pyproject.toml", "README.md"):
            shutil.copy2(project / name, source)
        ignore = shutil.ignore_patterns("__pycache__", "*.pyc", "*.egg-info")
        shutil.copytree(project / "src", source / "src", ignore=ignore)
        command = [sys.executable, "-m", "build", "--wheel", "--no-isolation"]
        command += ["--skip-dependency-check", "--outdir", str(outdir), str(source)]
        subprocess.run(command, check=True, stdout=subprocess.DEVNULL)
    (wheel,) = outdir.glob("mnist_pipeline-*-py3-none-any.whl")
    return wheel


def build(project: Path, target: Path, constraints: Path) -> dict:
    if target.exists():
        shutil.rmtree(target)
    venv.EnvBuilder(with_pip=True, clear=True).create(target)
    python = target / "bin" / "python"
    site = _site_packages(python)
    runtime = target / "runtime"
    runtime.mkdir()
    laptop = Path(sysconfig.get_paths()["purelib"])
    for entry in sorted(laptop.iterdir()):
        name = entry.name.lower()
        if name.endswith(".pth") or name == "__pycache__" or name.startswith(NOT_IN_RUNTIME):
            continue
        (runtime / entry.name).symlink_to(entry)
    (site / "databricks_runtime.pth").write_text(f"{runtime}\n")

    wheel = build_wheel(project, target / "dist")
    report = target / "pip-report.json"
    pip = [str(python), "-m", "pip", "install", "--quiet", "--disable-pip-version-check"]
    pip += ["-c", str(constraints), "--report", str(report), str(wheel)]
    subprocess.run(pip, check=True)
    installed = sorted(
        item["metadata"]["name"] for item in json.loads(report.read_text())["install"]
    )
    record = {"wheel": str(wheel), "runtime": str(runtime), "installed": installed}
    (target / "installed.json").write_text(json.dumps(record, indent=2) + "\n")
    return record


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--project", type=Path, default=Path.cwd())
    parser.add_argument("--target", type=Path, default=Path(".bundle-venv"))
    args = parser.parse_args(argv)
    project = args.project.resolve()
    record = build(project, args.target.resolve(), project / "requirements.lock")
    print(f"{args.target}: wheel {Path(record['wheel']).name}; pip installed {record['installed']}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
