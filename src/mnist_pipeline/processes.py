"""Stopping the servers the project starts (model server, and in tests MLflow, kedro-viz, Spark)."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess


def stop_process_group(process: subprocess.Popen | None, timeout_s: float = 15.0) -> None:
    """SIGTERM ``process``'s whole process group, then SIGKILL whatever is left.

    The process must have been started with ``start_new_session=True``. Servers
    such as uvicorn, ``mlflow server`` and ``kedro viz`` start children that can
    outlive their leader, so the group is killed even after the leader exited.
    """
    if process is None:
        return
    for sig in (signal.SIGTERM, signal.SIGKILL):
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, sig)
        with contextlib.suppress(subprocess.TimeoutExpired):
            process.wait(timeout=timeout_s)
