"""The project's wheel on a replica of Databricks Runtime 15.4 LTS ML.

`make install` builds `.dbr-venv/` (tools/databricks/replica.py, never a test): this
machine's Python 3.11 with the runtime's library versions (tools/databricks/
runtime-15.4-lts-ml.toml, from the release notes), Spark 3.5.0 outside pip as on a cluster,
and the job task's libraries installed on it with the replica's own pip, in the task's
order: requirements-databricks.txt, then the wheel. It records `pip freeze --all` before and
after, and `pip check`. These tests hold that install to the data file's allow-list.
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

from tools.databricks import replica as r

# The markers of a requirement on the runtime: CPython 3.11 on Linux x86_64.
MARKERS = {
    "python_version": "3.11",
    "python_full_version": "3.11.7",
    "sys_platform": "linux",
    "platform_system": "Linux",
    "platform_machine": "x86_64",
    "platform_python_implementation": "CPython",
    "implementation_name": "cpython",
    "os_name": "posix",
    "extra": "",
}


@pytest.fixture(scope="module")
def record(project_root) -> dict:
    path = project_root / ".dbr-venv" / r.RECORD
    if not path.is_file():
        pytest.fail(f"{path} is missing: `make install` builds the replica (tests never do)")
    return json.loads(path.read_text())


@pytest.fixture(scope="module")
def runtime_file(record, project_root) -> Path:
    """The data file the replica was built from (make install DBR_RUNTIME=...)."""
    return project_root / record["runtime_file"]


@pytest.fixture(scope="module")
def runtime(runtime_file) -> dict:
    return r.load_runtime(runtime_file)


def _changes(record: dict) -> dict[str, tuple[str, str]]:
    before, after = record["before"], record["after"]
    return {n: (before[n], after.get(n, "removed")) for n in before if after.get(n) != before[n]}


def test_the_replica_is_built_from_the_current_files(record, runtime_file, project_root):
    assert record["inputs"] == r.build_inputs(project_root, runtime_file), (
        "the replica was built from another pyproject.toml, data file or lock: run `make install`"
    )
    assert record["sources"] == r.sources_digest(project_root / "src" / "mnist_pipeline"), (
        "the replica's wheel was built from other sources: run `make install`"
    )


def test_the_replica_holds_the_runtimes_versions(record, runtime, project_root):
    libraries = runtime["libraries"]
    before = record["before"]
    wrong = {
        n: (v, libraries[n]) for n, v in before.items() if n in libraries and v != libraries[n]
    }
    assert not wrong, f"replica version != the release notes' (replica, runtime): {wrong}"
    for name in ("tensorflow", "keras", "numpy", "pandas", "pyarrow", "mlflow-skinny"):
        assert before[name] == libraries[name]
    # Spark is the runtime's, importable but outside pip (as /databricks/spark/python is).
    for name in runtime["outside_pip"]:
        assert name not in before and name not in record["after"]
    python = project_root / ".dbr-venv" / "bin" / "python"
    code = "import sys, pyspark, py4j; print(sys.version.split()[0], pyspark.__version__)"
    out = subprocess.run([python, "-c", code], capture_output=True, text=True, check=True)
    version, spark = out.stdout.split()
    assert version.startswith(runtime["runtime"]["python"] + ".")
    assert spark == runtime["outside_pip"]["pyspark"] == runtime["runtime"]["spark"]


def test_the_wheel_changes_no_runtime_library_but_the_allow_list(record, runtime):
    """`pip freeze` before and after the task's libraries: a runtime library that changed
    version must be on [allowed_changes], with a reason; an entry that no longer changes
    goes (the list stays exact)."""
    allowed = runtime["allowed_changes"]
    changed = _changes(record)
    unexpected = {n: f"{b} -> {a}" for n, (b, a) in changed.items() if n not in allowed}
    assert not unexpected, (
        "installing the lock and the wheel changed runtime libraries that are not on "
        f"[allowed_changes] of {record['runtime_file']}: {unexpected}"
    )
    assert all(reason.strip() for reason in allowed.values())
    unused = sorted(set(allowed) - set(changed))
    assert not unused, f"[allowed_changes] lists libraries that no longer change: {unused}"


def test_pip_check_is_clean(record):
    check = record["pip_check"]
    assert check["returncode"] == 0, check["output"]


def test_the_lock_is_current_and_holds_every_dependency_of_the_wheel(record, runtime, project_root):
    assert not record["unresolvable"], record["unresolvable"]
    assert record["lock_current"], (
        f"{r.LOCK} was resolved from another pyproject.toml or data file: "
        "run `make databricks-lock`, then `make install`"
    )
    # The lock, installed first, left pip nothing to resolve for the wheel but the wheel.
    assert set(record["installed_by_wheel"]) == {"mnist-pipeline"}, record["installed_by_wheel"]
    # What pip installed for the lock is the lock, and the runtime libraries whose version
    # the data file does not know (left to pip; the replica lacks them).
    _, pins = r.read_lock(project_root / r.LOCK)
    unknown = set(map(canonicalize_name, runtime["unknown_versions"]["names"]))
    installed = record["installed_by_lock"]
    assert {n: v for n, v in installed.items() if n not in unknown} == pins


def test_runtime_libraries_outside_the_replica_keep_their_requirements(
    record, runtime, runtime_file
):
    """The replica holds only the runtime libraries that matter to the wheel; `pip check`
    there cannot see the others. Their own requirements (the data file's companion
    `.requires.json`) are checked against the changed versions here: every break must be
    on [accepted_conflicts] with its reason, and every entry there must still break."""
    metadata = json.loads(r.metadata_file(runtime_file).read_text())
    assert metadata["libraries"] == r._sha256(runtime["libraries"]), (
        "the runtime's requirements were read for other library versions: "
        "run `python -m tools.databricks.replica metadata`"
    )
    changed = {n: after for n, (_, after) in _changes(record).items()}
    outside = set(runtime["libraries"]) - set(record["before"])
    broken: dict[str, list[str]] = {}
    for library in sorted(outside):
        for text in metadata["requires"].get(library, []):
            requirement = Requirement(text)
            name = canonicalize_name(requirement.name)
            if name not in changed or (
                requirement.marker and not requirement.marker.evaluate(MARKERS)
            ):
                continue
            if not requirement.specifier.contains(changed[name], prereleases=True):
                broken.setdefault(library, []).append(
                    f"requires {text}, gets {name} {changed[name]}"
                )
    accepted = {canonicalize_name(n): why for n, why in runtime["accepted_conflicts"].items()}
    assert set(broken) == set(accepted), (
        f"runtime libraries whose requirements the allowed changes break: {broken}; "
        f"[accepted_conflicts] lists {sorted(accepted)}"
    )
    assert all(why.strip() for why in accepted.values())
