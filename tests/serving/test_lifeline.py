"""The lifeline between a parent and its child server, without TensorFlow (fast).

A parent starts a child in a session of its own (as ``ServerProcess`` does) and hands it
the read end of :func:`lifeline`; the child runs :func:`watch_parent`. Killing the parent's
whole process group (SIGKILL or SIGTERM: neither reaches the child's session) must make the
child clean up and exit by itself.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

CHILD = """
import os, shutil, signal, sys, threading
from mnist_pipeline.processes import watch_parent
fd, folder = int(sys.argv[1]), sys.argv[2]
def orphaned():
    shutil.rmtree(folder)
    os.kill(os.getpid(), signal.SIGTERM)
watch_parent(fd, orphaned)
print("watching", flush=True)
threading.Event().wait()
"""

PARENT = """
import os, subprocess, sys
from mnist_pipeline.processes import lifeline
read_fd, write_fd = lifeline()
child = subprocess.Popen([sys.executable, "-c", sys.argv[1], str(read_fd), sys.argv[2]],
                         pass_fds=(read_fd,), start_new_session=True, stdout=subprocess.PIPE,
                         text=True)
os.close(read_fd)
assert child.stdout.readline() == "watching\\n"
print(child.pid, flush=True)
sys.stdin.read()
"""


def _running(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except FileNotFoundError:
        return False
    return state != "Z"


@pytest.mark.parametrize("sig", [signal.SIGKILL, signal.SIGTERM], ids=["SIGKILL", "SIGTERM"])
def test_the_child_cleans_up_and_stops_when_its_parent_is_killed(tmp_path: Path, sig) -> None:
    folder = tmp_path / "server-workdir"
    folder.mkdir()
    parent = subprocess.Popen(
        [sys.executable, "-c", PARENT, CHILD, str(folder)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    child = None
    try:
        child = int(parent.stdout.readline())  # the handshake: the child is watching
        assert _running(child) and folder.is_dir()
        os.killpg(parent.pid, sig)
        parent.wait(timeout=30)
        deadline = time.monotonic() + 30
        while _running(child) and time.monotonic() < deadline:
            time.sleep(0.05)  # bounded polling of the child's state
        assert not _running(child), "the child outlived its parent"
        assert not folder.exists()
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(parent.pid, signal.SIGKILL)
        if child is not None and _running(child):
            os.kill(child, signal.SIGKILL)
        parent.wait(timeout=30)


def test_the_child_keeps_running_while_its_parent_lives(tmp_path: Path) -> None:
    """No false alarm: the lifeline stays quiet while the parent holds its end."""
    read_fd, write_fd = os.pipe()
    child = subprocess.Popen(
        [sys.executable, "-c", CHILD, str(read_fd), str(tmp_path)],
        pass_fds=(read_fd,),
        stdout=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    os.close(read_fd)
    try:
        assert child.stdout.readline() == "watching\n"
        with pytest.raises(subprocess.TimeoutExpired):
            child.wait(timeout=1.0)  # still alive a second later, folder kept
        assert tmp_path.is_dir()
        os.close(write_fd)  # the parent lets go: now it stops
        write_fd = -1
        assert child.wait(timeout=30) == -signal.SIGTERM
        assert not tmp_path.exists()
    finally:
        if write_fd != -1:
            os.close(write_fd)
        if child.poll() is None:
            child.kill()
            child.wait()
