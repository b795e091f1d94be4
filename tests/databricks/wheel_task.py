"""Call a wheel's entry point the way a Databricks ``python_wheel_task`` does.

Databricks finds ``entry_point`` in the installed package's metadata, puts the task's
``parameters`` in ``sys.argv`` (after a program name) and calls the function with no
arguments; it ignores what the function returns. The task fails only when the call raises:
an exception, or ``SystemExit`` with a code other than 0/None. No ``sys.exit(main())``
wrapper, unlike a console script, turns a returned 1 into a failure.

``python -m tests.databricks.wheel_task <package> <entry point> [parameters...]`` does the
same in a fresh process and prints the outcome as one JSON line (a Kedro run's session
state stays out of the test process).
"""

from __future__ import annotations

import importlib.metadata
import json
import sys
from dataclasses import asdict, dataclass
from typing import Any


@dataclass(frozen=True)
class Outcome:
    how: str  # returned | system_exit | exception
    detail: Any  # the return value, the exit code, or the exception's type

    @property
    def failed(self) -> bool:
        """Whether Databricks would mark the task failed."""
        return self.how == "exception" or (
            self.how == "system_exit" and self.detail not in (0, None)
        )


def entry_points(package: str) -> dict[str, importlib.metadata.EntryPoint]:
    dist = importlib.metadata.distribution(package)
    return {ep.name: ep for ep in dist.entry_points if ep.group == "console_scripts"}


def call(package: str, entry_point: str, parameters: list[str]) -> Outcome:
    function = entry_points(package)[entry_point].load()
    saved = sys.argv
    sys.argv = [package, *parameters]
    try:
        value = function()
    except SystemExit as exc:
        return Outcome("system_exit", exc.code)
    except Exception as exc:
        return Outcome("exception", type(exc).__name__)
    finally:
        sys.argv = saved
    return Outcome("returned", repr(value))


if __name__ == "__main__":
    outcome = call(sys.argv[1], sys.argv[2], sys.argv[3:])
    print("OUTCOME " + json.dumps(asdict(outcome)), flush=True)
