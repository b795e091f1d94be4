"""A real Spark standalone cluster on 127.0.0.1: one master, N one-core workers.

Started from the scripts of a pyspark installation (``bin/spark-class``; by default this
venv's, or another one's such as the Databricks replica's Spark 3.5.0), each daemon in its
own process group, stopped (and waited for) on close.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import time
import urllib.request
from pathlib import Path

import pyspark

from mnist_pipeline.processes import stop_process_group


def can_unshare() -> bool:
    """Whether workers can get private folders (``unshare``: root only), as the cloud
    cluster's "no shared disk" needs."""
    return os.geteuid() == 0 and shutil.which("unshare") is not None


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class StandaloneCluster:
    """``StandaloneCluster(folder, workers=2).start()``; ``.master_url``; ``.close()``.

    ``private_dirs``: start each worker in its own mount namespace with an empty tmpfs
    over each of these folders (``unshare --mount``, root only), so that its executors
    cannot see what the driver keeps there, like a second machine built from the same
    image. The workers' work folders then live in that private view too.

    ``spark_home``: the pyspark folder whose Spark runs the cluster (default: this venv's
    pyspark); ``python``: the executors' Python (``PYSPARK_PYTHON``; default: whatever the
    application sets).
    """

    def __init__(
        self,
        folder: Path,
        workers: int = 2,
        cores: int = 1,
        memory: str = "3g",
        private_dirs: tuple[Path, ...] = (),
        *,
        spark_home: Path | None = None,
        python: Path | None = None,
    ):
        self.folder = Path(folder)
        self.private_dirs = tuple(Path(d) for d in private_dirs)
        self.workers = workers
        self.cores = cores
        self.memory = memory
        self.spark_home = Path(spark_home or Path(pyspark.__file__).parent)
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
            mounts = " && ".join(f"mount -t tmpfs tmpfs '{d}'" for d in self.private_dirs)
            command = ["unshare", "--mount", "bash", "-c", f'{mounts} && exec "$@"', "--", *command]
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
