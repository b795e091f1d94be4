import os
import subprocess
import sys
import time

from mnist_pipeline.processes import stop_process_group

# A leader that starts a child which ignores SIGTERM (as server helpers may), then waits.
# Readiness handshake, no sleep: the child prints "ready" once SIGTERM is ignored, and the
# leader prints the child's pid once it has read that line.
LEADER = """
import subprocess, sys, time
child = (
    "import signal, time; signal.signal(signal.SIGTERM, signal.SIG_IGN); "
    "print('ready', flush=True); time.sleep(60)"
)
process = subprocess.Popen([sys.executable, "-c", child], stdout=subprocess.PIPE, text=True)
assert process.stdout.readline().strip() == "ready"
print(process.pid, flush=True)
time.sleep(60)
"""


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


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
    leader = subprocess.Popen(
        [sys.executable, "-c", LEADER], start_new_session=True, stdout=subprocess.PIPE, text=True
    )
    child = int(leader.stdout.readline())  # the child runs and ignores SIGTERM
    assert _alive(child) and os.getpgid(child) == leader.pid
    stop_process_group(leader, timeout_s=2)
    leader.stdout.close()
    assert leader.poll() is not None
    assert not _group_alive(leader.pid)


def test_nothing_to_stop():
    stop_process_group(None)
