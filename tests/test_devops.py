"""The delivery files agree with the project: pre-commit, the GitHub workflow, ``.ci/run``.

The workflow cannot run here; these tests pin what it must keep doing: run ``.ci/run`` on
the Python and Java the project needs, with MNIST files verified against the project's own
checksums. The pre-commit hooks must lint with the ruff that ``make lint`` uses.
"""

from __future__ import annotations

import re
import subprocess
from importlib.metadata import version
from pathlib import Path

import pytest
import yaml

from tests.integration.browser import CANDIDATES


@pytest.fixture(scope="module")
def root(project_root: Path) -> Path:
    return project_root


@pytest.fixture(scope="module")
def workflow(root: Path) -> dict:
    return yaml.safe_load((root / ".github/workflows/ci.yml").read_text())


@pytest.fixture(scope="module")
def steps(workflow: dict) -> list[dict]:
    (job,) = workflow["jobs"].values()
    return job["steps"]


def _step(steps: list[dict], uses: str) -> dict:
    (step,) = [s for s in steps if s.get("uses", "").startswith(uses + "@")]
    return step


def _globals(root: Path) -> dict:
    return yaml.safe_load((root / "conf/base/globals.yml").read_text())


def test_pre_commit_ruff_is_the_pinned_ruff(root):
    config = yaml.safe_load((root / ".pre-commit-config.yaml").read_text())
    repos = {repo["repo"]: repo for repo in config["repos"]}
    ruff = repos["https://github.com/astral-sh/ruff-pre-commit"]
    assert ruff["rev"] == f"v{version('ruff')}"
    assert f"ruff=={version('ruff')}\n" in (root / "requirements.lock").read_text()
    assert {hook["id"] for hook in ruff["hooks"]} == {"ruff", "ruff-format"}
    (strip,) = repos["https://github.com/kynan/nbstripout"]["hooks"]
    assert re.match(strip["files"], "notebooks/01_explore_mnist.ipynb")


def test_workflow_runs_ci_run_on_the_project_toolchain(root, workflow, steps):
    triggers = workflow.get(True) or workflow.get("on")  # YAML 1.1 reads `on:` as True
    assert "pull_request" in triggers and "push" in triggers
    python = _step(steps, "actions/setup-python")["with"]["python-version"]
    assert re.search(r">=\s*" + re.escape(python), (root / "pyproject.toml").read_text())
    assert _step(steps, "actions/setup-java")["with"]["java-version"] == "17"
    assert [s["run"].strip() for s in steps if "run" in s][-1] == "bash .ci/run"


def test_workflow_verifies_mnist_with_the_project_checksums(root, workflow, steps):
    mnist = _globals(root)["mnist"]
    scripts = "\n".join(s.get("run", "") for s in steps)
    listed = dict(
        (name, digest) for digest, name in re.findall(r"^\s*([0-9a-f]{64})\s+(\S+)$", scripts, re.M)
    )
    assert listed == mnist["sha256"]
    default_source = re.fullmatch(r"\$\{env:MNIST_SOURCE,(.+)\}", mnist["source"]).group(1)
    assert f"{default_source}/$name" in scripts
    (job,) = workflow["jobs"].values()
    cache = _step(steps, "actions/cache")["with"]["path"]
    assert job["env"]["MNIST_TEST_DATA"].endswith("/" + cache)


def test_ci_run_installs_a_browser_before_the_tests(root):
    script = (root / ".ci/run").read_text()
    subprocess.run(["bash", "-n", str(root / ".ci/run")], check=True)
    lines = [line.strip() for line in script.splitlines() if line.strip()]
    assert lines[-1] == "exec make test"
    assert script.index("apt-get install") < script.index("exec make test")
    for name in CANDIDATES:
        assert f"command -v {name} " in script, name
