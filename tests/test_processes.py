import os
import subprocess
import sys
import time

from mnist_pipeline.processes import stop_process_group

# A leader that starts a child which ignores SIGTERM (as server helpers may), then waits.
LEADER = """
import signal, subprocess, sys, time
child = "import signal, time; signal.signal(signal.SIGTERM, signal.SIG_IGN); time.sleep(60)"
subprocess.Popen([sys.executable, "-c", child])
time.sleep(60)
"""


def _group_alive(pgid: int, within_s: float = 5.0) -> bool:
    """Whether the group still has members after ``within_s`` (zombies get reaped meanwhile)."""
    deadline = time.monotonic() + within_s
    while time.monotonic() < deadline:
        try:
            os.killpg(pgid, 0)
        except ProcessLookupError:
            return False
        time.sleep(0.1)
    return True


def test_stops_the_leader_and_the_children_that_ignore_sigterm():
    leader = subprocess.Popen([sys.executable, "-c", LEADER], start_new_session=True)
    time.sleep(1.0)  # let the child start
    stop_process_group(leader, timeout_s=2)
    assert leader.poll() is not None
    assert not _group_alive(leader.pid)


def test_nothing_to_stop():
    stop_process_group(None)
