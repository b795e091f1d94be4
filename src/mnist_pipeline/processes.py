"""Stopping the servers the project starts (model server, and in tests MLflow, kedro-viz, Spark).

A child server also stops by itself when the process that started it dies, however it
dies: :func:`lifeline` and :func:`watch_parent`.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import threading
from collections.abc import Callable


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


def lifeline() -> tuple[int, int]:
    """A pipe to hand a child: it keeps ``read_fd`` (``pass_fds``), the parent ``write_fd``.

    The parent never writes. When the parent process dies, however it dies (SIGKILL
    included), the kernel closes ``write_fd`` and the child's read returns EOF: see
    :func:`watch_parent`. Close ``read_fd`` in the parent once the child is started,
    and ``write_fd`` once the child is stopped.
    """
    return os.pipe()  # both ends non-inheritable: only pass_fds hands read_fd on


def watch_parent(
    read_fd: int, on_orphaned: Callable[[], None], grace_s: float = 15.0
) -> threading.Thread:
    """In a child: call ``on_orphaned`` once the parent holding the lifeline is gone.

    A daemon thread blocks on ``read_fd``; EOF (or an error) means the parent died.
    Then ``on_orphaned`` runs (clean up, ask for a graceful stop), and if the process
    is still alive ``grace_s`` later, it exits with status 1.
    """

    def watch() -> None:
        with contextlib.suppress(OSError):
            while os.read(read_fd, 1):
                pass
        try:
            on_orphaned()
        finally:
            threading.Event().wait(grace_s)
            os._exit(1)

    thread = threading.Thread(target=watch, name="parent-watchdog", daemon=True)
    thread.start()
    return thread
