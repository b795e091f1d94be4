"""The Makefile's install steps, read with `make -n` (nothing runs, nothing is downloaded).

`make run` installs only what the sandbox job (`kedro run --env azure`) needs; `make test`
adds the rest into the same venv, the lock respected in both steps.
"""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest

PROJECT_ROOT = Path(__file__).resolve().parents[1]
EXTRAS_ONLY = ("npm", "azurite", ".dbr-venv", "tools.databricks.replica", "registry.model_env")

pytestmark = pytest.mark.skipif(shutil.which("make") is None, reason="needs make")


def dry_run(target: str, tmp_path: Path) -> str:
    """`make -n TARGET` as on a fresh clone: every artefact of the install is absent."""
    variables = {
        "VENV": tmp_path / "venv",
        "DBR_VENV": tmp_path / ".dbr-venv",
        "MODEL_ENV_ROOT": tmp_path / ".mlflow-envs",
        "AZURITE": tmp_path / "node_modules" / ".bin" / "azurite-blob",
    }
    done = subprocess.run(
        ["make", "-n", "--no-print-directory", target, *(f"{k}={v}" for k, v in variables.items())],
        cwd=PROJECT_ROOT, capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    return done.stdout


def uv_installs(commands: str) -> list[str]:
    """The requirement of each `uv pip install` (the offline try and its fallback)."""
    return re.findall(
        r'uv pip install [^;|]*?-c requirements\.lock (?:--offline )?(-e "[^"]+")', commands
    )


def test_make_run_installs_the_sandbox_jobs_packages_only(tmp_path):
    commands = dry_run("run", tmp_path)
    assert commands.rstrip().endswith("bin/kedro run --env azure")
    assert set(uv_installs(commands)) == {'-e ".[local]"'}
    for other in EXTRAS_ONLY:
        assert other not in commands, f"make run builds {other}, which the sandbox job never uses"


def test_make_test_adds_the_rest_to_the_same_venv(tmp_path):
    commands = dry_run("test", tmp_path)
    venv = tmp_path / "venv"
    assert commands.count(f"-m venv {venv}") == 1
    assert uv_installs(commands) == [
        *['-e ".[local]"'] * 2, *['-e ".[local,cloud,test]"'] * 2  # offline try, then index
    ]  # fmt: skip
    for other in EXTRAS_ONLY:
        assert other in commands
    assert commands.index(".[local,cloud,test]") < commands.index("-m pytest")


def test_a_missing_azurite_names_the_make_target_that_installs_it(tmp_path, monkeypatch):
    from tools.cloud import emulators

    monkeypatch.setattr(emulators, "AZURITE", tmp_path / "azurite-blob")
    with pytest.raises(RuntimeError, match=r"run `make azurite`"):
        emulators.Emulators(tmp_path / "state", services=("azurite",)).start()
    assert re.search(r"^azurite:", (PROJECT_ROOT / "Makefile").read_text(), re.M)
