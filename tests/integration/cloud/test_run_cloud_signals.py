"""``make run-cloud`` stopped with SIGTERM while its emulators start leaves none behind.

The run's emulators are made never to answer (their readiness check, in the run's process),
so the signal is sure to land while ``Emulators.start`` waits for them: before the run could
register their cleanup.
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

from tools.cloud.emulators import AZURITE, ROOT

RUN_WITH_SILENT_EMULATORS = """
import sys
import tools.cloud.emulators as emulators
emulators._answers = lambda url: False  # never ready: the run waits in Emulators.start
from tools.cloud.run_cloud import main
sys.exit(main(["--dir", sys.argv[1]]))
"""


def _children(pid: int) -> set[int]:
    found: set[int] = set()
    for task in Path(f"/proc/{pid}/task").glob("*"):
        with contextlib.suppress(OSError):
            found |= {int(child) for child in (task / "children").read_text().split()}
    return found


def _running(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state not in ("Z", "X")  # a zombie has stopped


def test_sigterm_while_the_emulators_start_stops_them(tmp_path):
    if not AZURITE.exists():
        pytest.skip(f"{AZURITE} missing: run `make install` (npm ci in tools/cloud)")
    run = subprocess.Popen(
        [sys.executable, "-c", RUN_WITH_SILENT_EMULATORS, str(tmp_path / "cloud")],
        cwd=ROOT,
        start_new_session=True,
    )
    emulators: set[int] = set()
    try:
        deadline = time.monotonic() + 60
        while len(emulators) < 2:  # Azurite and fake-gcs-server spawned (readiness: /proc)
            assert run.poll() is None, "the run ended before starting its emulators"
            assert time.monotonic() < deadline, "the emulators were not started"
            emulators = _children(run.pid)
            time.sleep(0.05)
        run.send_signal(signal.SIGTERM)
        assert run.wait(timeout=60) == 128 + signal.SIGTERM
        left = sorted(pid for pid in emulators if _running(pid))
        assert not left, f"emulators still running after the run ended: {left}"
    finally:
        for pid in emulators:  # whatever the outcome, nothing is left behind by the test
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(pid, signal.SIGKILL)
        with contextlib.suppress(ProcessLookupError):
            os.killpg(run.pid, signal.SIGKILL)
        run.wait(timeout=30)
