"""A real Spark standalone cluster on 127.0.0.1: one master, N one-core workers.

Started from the scripts of a pyspark installation (``bin/spark-class``; by default this
venv's, or another one's such as the Databricks replica's Spark 3.5.0), each daemon in its
own process group, stopped (and waited for) on close.

The "no shared disk" variant starts each worker in its own mount namespace in which the
driver's own folders (the project's ``data/`` and ``mlruns/``, the temp folder and the test
run's scratch folder) are empty, while what a worker runs from (the project's code and
virtual environment, Python, Spark, Java) stays visible wherever it lives, even inside a
hidden folder (a clone in the temp folder): like a second machine built from the same image.
"""

from __future__ import annotations

import os
import shlex
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Iterable, Sequence
from pathlib import Path

import pyspark

from mnist_pipeline.processes import stop_process_group
from tests.conftest import PROJECT_ROOT

SPARK_HOME = Path(pyspark.__file__).parent


def can_unshare() -> bool:
    """Whether workers can get private folders (``unshare``: root only), as the cloud
    cluster's "no shared disk" needs."""
    return os.geteuid() == 0 and shutil.which("unshare") is not None


def driver_only_folders(scratch: Path | None = None) -> tuple[Path, ...]:
    """The driver's folders that a worker without a shared disk must not see: the project's
    data and MLflow folders, the temp folder and the test run's ``scratch`` folder."""
    folders = [PROJECT_ROOT / "data", PROJECT_ROOT / "mlruns", Path(tempfile.gettempdir())]
    return tuple(folders + ([Path(scratch)] if scratch is not None else []))


def worker_folders() -> tuple[Path, ...]:
    """What a worker runs from, as on a machine built from the same image: the project (its
    code and virtual environment), the Python installation, pyspark's Spark and Java."""
    java = os.environ.get("JAVA_HOME") or shutil.which("java")
    java_home = Path(java) if os.environ.get("JAVA_HOME") else None
    if java_home is None and java:
        java_home = Path(os.path.realpath(java)).parents[1]  # <home>/bin/java
    folders = [PROJECT_ROOT, Path(sys.prefix), Path(sys.base_prefix), SPARK_HOME]
    return tuple(folders + ([java_home] if java_home else []))


class PrivateViewError(ValueError):
    """The folders to hide and the folders to keep cannot both hold (the reason says why)."""


def private_view_commands(hidden: Iterable[Path], kept: Iterable[Path]) -> list[str]:
    """Shell commands that, run in a new mount namespace, put an empty tmpfs over each
    ``hidden`` folder while every ``kept`` folder stays visible.

    Folders are handled from the outermost in: a hidden folder gets a tmpfs unless an outer
    one already hides it; a kept folder that an outer tmpfs hides is bound back from a file
    descriptor opened before any mount (``mount --bind /proc/self/fd/N``), so hidden folders
    inside it (the project's ``data/`` in a clone under the temp folder) get their own
    tmpfs after it. The last command is ``cd /``: a working folder under a hidden one would
    still see the files underneath.

    Every hidden folder must exist (:meth:`StandaloneCluster.start` makes the missing ones).

    Raises:
        PrivateViewError: a folder is both hidden and kept.
    """
    hide = {Path(os.path.realpath(path)) for path in hidden}
    keep = {Path(os.path.realpath(path)) for path in kept}
    both = sorted(hide & keep)
    if both:
        raise PrivateViewError(
            f"{', '.join(map(str, both))} would be hidden from the workers (a driver's data, "
            "MLflow or scratch folder) and kept (what a worker runs from) at once"
        )
    applied: dict[Path, str] = {}

    def hidden_now(path: Path) -> bool:
        """Whether the innermost folder handled so far at or above ``path`` is hidden."""
        for folder in (path, *path.parents):
            if folder in applied:
                return applied[folder] == "hide"
        return False

    opens: list[str] = []
    mounts: list[str] = []
    for path in sorted(hide | keep, key=lambda folder: (len(folder.parts), str(folder))):
        quoted = shlex.quote(str(path))
        if path in hide and not hidden_now(path):
            mounts.append(f"mount -t tmpfs tmpfs {quoted}")
        elif path in keep and hidden_now(path):
            fd = 3 + len(opens)
            opens.append(f"exec {fd}<{quoted}")
            mounts.append(
                f"mkdir -p {quoted} && mount --no-canonicalize --bind /proc/self/fd/{fd} {quoted}"
            )
        applied[path] = "hide" if path in hide else "keep"
    closes = [f"exec {3 + index}<&-" for index in range(len(opens))]
    return [*opens, *mounts, *closes, "cd /"]


def no_shared_disk_unavailable(scratch: Path | None = None) -> str | None:
    """Why the no-shared-disk cluster cannot run here (``None``: it can)."""
    if not can_unshare():
        return "the no-shared-disk cluster needs root and unshare (CI runs as root)"
    try:
        private_view_commands(driver_only_folders(scratch), worker_folders())
    except PrivateViewError as error:
        return f"the no-shared-disk cluster cannot hide the driver's folders here: {error}"
    return None


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class StandaloneCluster:
    """``StandaloneCluster(folder, workers=2).start()``; ``.master_url``; ``.close()``.

    ``private_dirs``: start each worker in its own mount namespace with an empty tmpfs
    over each of these folders (``unshare --mount``, root only), so that its executors
    cannot see what the driver keeps there, while ``visible_dirs`` (by default what a
    worker runs from: :func:`worker_folders`) stay visible, like a second machine built
    from the same image. The workers' work folders live in that private view too when
    they are under a private folder.

    ``spark_home``: the pyspark folder whose Spark runs the cluster (default: this venv's
    pyspark); ``python``: the executors' Python (``PYSPARK_PYTHON``; default: whatever the
    application sets).
    """

    def __init__(  # noqa: PLR0917
        self,
        folder: Path,
        workers: int = 2,
        cores: int = 1,
        memory: str = "3g",
        private_dirs: Sequence[Path] = (),
        visible_dirs: Sequence[Path] | None = None,
        *,
        spark_home: Path | None = None,
        python: Path | None = None,
    ):
        self.folder = Path(folder)
        self.private_dirs = tuple(Path(d) for d in private_dirs)
        self.visible_dirs = tuple(visible_dirs) if visible_dirs is not None else worker_folders()
        self.workers = workers
        self.cores = cores
        self.memory = memory
        self.spark_home = Path(spark_home or SPARK_HOME)
        self.python = python
        self.port = _free_port()
        self.ui_port = _free_port()
        self.master_url = f"spark://127.0.0.1:{self.port}"
        self._processes: list[subprocess.Popen] = []

    def _env(self) -> dict[str, str]:
        env = dict(os.environ)
        env.update(
            SPARK_HOME=str(self.spark_home),
            SPARK_LOCAL_IP="127.0.0.1",
            SPARK_LOG_DIR=str(self.folder / "logs"),
            SPARK_WORKER_DIR=str(self.folder / "work"),
        )
        if self.python:
            env["PYSPARK_PYTHON"] = str(self.python)
        return env

    def _spawn(self, name: str, *args: str, private: bool = False) -> None:
        log = open(self.folder / f"{name}.log", "wb")  # noqa: SIM115 - closed with the process
        command = [str(self.spark_home / "bin" / "spark-class"), *args]
        if private and self.private_dirs:
            view = private_view_commands(self.private_dirs, self.visible_dirs)
            script = " && ".join([*view, 'exec "$@"'])
            command = ["unshare", "--mount", "bash", "-c", script, "--", *command]
        process = subprocess.Popen(
            command,
            env=self._env(),
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        log.close()
        self._processes.append(process)

    def start(self, timeout_s: float = 90) -> StandaloneCluster:
        self.folder.mkdir(parents=True, exist_ok=True)
        for folder in self.private_dirs:  # a tmpfs goes over a folder: the driver's, empty
            folder.mkdir(parents=True, exist_ok=True)
        self._spawn(
            "master",
            "org.apache.spark.deploy.master.Master",
            "--host", "127.0.0.1", "--port", str(self.port), "--webui-port", str(self.ui_port),
        )  # fmt: skip
        for index in range(self.workers):
            self._spawn(
                f"worker-{index}",
                "org.apache.spark.deploy.worker.Worker",
                self.master_url,
                "--host", "127.0.0.1", "--webui-port", "0",
                "--cores", str(self.cores), "--memory", self.memory,
                "--work-dir", str(self.folder / "work"),
                private=True,
            )  # fmt: skip
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.alive_workers() >= self.workers:
                return self
            for process in self._processes:
                if process.poll() is not None:
                    self.close()
                    raise RuntimeError(
                        f"a Spark daemon exited with {process.returncode}; see {self.folder}/*.log"
                    )
            time.sleep(1)
        self.close()
        raise RuntimeError(f"{self.workers} Spark workers did not register in {timeout_s:g} s")

    def alive_workers(self) -> int:
        import json

        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{self.ui_port}/json/", timeout=2) as r:
                state = json.load(r)
        except OSError:
            return 0
        return sum(1 for worker in state.get("workers", []) if worker.get("state") == "ALIVE")

    def executor_logs(self) -> str:
        """Every executor's stderr (for failure messages)."""
        return "\n".join(
            f"--- {path}\n{path.read_text(errors='replace')[-3000:]}"
            for path in sorted((self.folder / "work").glob("app-*/*/stderr"))
        )

    def close(self) -> None:
        # Workers first, then the master.
        for process in reversed(self._processes):
            stop_process_group(process, timeout_s=30)
        self._processes.clear()


def python_task_workers(work_dir: Path) -> list[int]:
    """PIDs of the Python task workers (forked by a pyspark daemon) of this cluster's executors."""
    pids = []
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            cmdline = (proc / "cmdline").read_bytes().replace(b"\0", b" ").decode()
            parent = (proc / "stat").read_text().rsplit(")", 1)[1].split()[1]
            parent_cmdline = Path(f"/proc/{parent}/cmdline").read_bytes().replace(b"\0", b" ")
            cwd = os.readlink(proc / "cwd")
        except OSError:
            continue
        if (
            "pyspark.daemon" in cmdline
            and b"pyspark.daemon" in parent_cmdline
            and cwd.startswith(str(work_dir))
        ):
            pids.append(int(proc.name))
    return pids
