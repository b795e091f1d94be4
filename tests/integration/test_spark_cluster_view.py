"""The no-shared-disk workers' view: exactly the driver's folders hidden, wherever the project
lives (``tests/integration/spark_cluster.py``; the Spark cluster itself runs in
``cloud/test_cloud_cluster.py``)."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from tests.integration.spark_cluster import (
    PrivateViewError,
    can_unshare,
    private_view_commands,
)


def _layout(root: Path) -> dict[str, Path]:
    """A temp folder holding a clone of the project (the case that hid the project's venv)."""
    temp = root / "tmp"
    clone = temp / "clone"
    paths = {
        "temp": temp,
        "clone": clone,
        "data": clone / "data",
        "mlruns": clone / "mlruns",
        "venv_python": clone / ".venv" / "bin" / "python",
        "code": clone / "src" / "module.py",
        "driver_data": clone / "data" / "driver.csv",
        "driver_run": clone / "mlruns" / "run.json",
        "driver_scratch": temp / "pytest-of-root" / "probe.txt",
        "outside": root / "java" / "bin" / "java",
    }
    for name, path in paths.items():
        if name in {"temp", "clone", "data", "mlruns"}:
            path.mkdir(parents=True, exist_ok=True)
        else:
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(name)
    return paths


def test_a_kept_folder_inside_a_hidden_one_is_bound_back_before_its_own_hidden_folders(
    tmp_path,
):
    paths = _layout(tmp_path)
    hidden = [paths["data"], paths["mlruns"], paths["temp"], paths["driver_scratch"].parent]
    kept = [paths["clone"], paths["clone"] / ".venv", paths["outside"].parents[1]]
    commands = private_view_commands(hidden, kept)
    temp, clone = str(paths["temp"]), str(paths["clone"])
    assert commands == [
        f"exec 3<{clone}",
        f"mount -t tmpfs tmpfs {temp}",
        f"mkdir -p {clone} && mount --no-canonicalize --bind /proc/self/fd/3 {clone}",
        f"mount -t tmpfs tmpfs {paths['data']}",
        f"mount -t tmpfs tmpfs {paths['mlruns']}",
        "exec 3<&-",
        "cd /",
    ]


def test_a_folder_both_hidden_and_kept_is_refused_with_the_reason(tmp_path):
    with pytest.raises(PrivateViewError, match=r"hidden from the workers .* and kept"):
        private_view_commands([tmp_path], [tmp_path, Path("/usr")])


@pytest.mark.skipif(not can_unshare(), reason="a private mount namespace needs root and unshare")
def test_a_worker_sees_the_clone_and_its_venv_but_none_of_the_drivers_files(tmp_path):
    paths = _layout(tmp_path)
    hidden = [paths["data"], paths["mlruns"], paths["temp"]]
    kept = [paths["clone"], paths["outside"].parents[1]]
    checks = ["venv_python", "code", "outside", "driver_data", "driver_run", "driver_scratch"]
    probe = "; ".join(
        f"test -e {paths[name]} && echo {name}=seen || echo {name}=gone" for name in checks
    )
    script = " && ".join([*private_view_commands(hidden, kept), "pwd"]) + f"; {probe}"
    result = subprocess.run(
        ["unshare", "--mount", "bash", "-c", script],
        cwd=paths["clone"],  # a working folder inside a hidden one must not see through it
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    lines = result.stdout.split()
    assert lines[0] == "/"
    assert dict(line.split("=") for line in lines[1:]) == {
        "venv_python": "seen",
        "code": "seen",
        "outside": "seen",
        "driver_data": "gone",
        "driver_run": "gone",
        "driver_scratch": "gone",
    }
    # Nothing leaked out of the namespace: the driver still sees its own files.
    assert paths["driver_data"].read_text() == "driver_data"
    assert paths["driver_scratch"].read_text() == "driver_scratch"
