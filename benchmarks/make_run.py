"""Benchmark: the README's first command, `make run`, on a fresh clone and then again.

1. ``git clone`` of this repository's HEAD into a temporary folder (committed work only);
2. ``make run`` there with no ``.venv`` (the package caches as this machine has them: warm
   where the project was installed before) — the quick start's first command;
3. ``make run`` again, the venv present.

Each run prints its wall time split into install (everything before make starts
``kedro run``), Kedro's start (to the first node) and the pipeline's stages (from the
clone's ``logs/info.log``: a stage ends with its last completed node), the load average at
start and end, and the training's images/s that day (from the run's training summary), since
the pipeline's time follows the machine's speed.

Usage::

    MNIST_SOURCE=../shared/data/mnist python benchmarks/make_run.py [--keep]

MNIST comes from ``MNIST_SOURCE`` (else ``MNIST_TEST_DATA``, else ``../shared/data/mnist``
beside the project): the clone never downloads it.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from datetime import datetime
from pathlib import Path

PROJECT_ROOT = Path(__file__).resolve().parents[1]
KEDRO_COMMAND = "bin/kedro run --env azure"
LOG_LINE = re.compile(r"^(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3}) - \S+ - \w+ - (.*)$")
COMPLETED = re.compile(r"Completed node: (?:(\w+)\.)?\w+")
RUNNING = re.compile(r"Running node: ")
INSTALL_STEP = re.compile(r"-m venv|-m pip install|uv pip install|cannot|installing from the index")


def mnist_source() -> str:
    """The local MNIST folder the clone reads (never the network)."""
    chosen = os.environ.get("MNIST_SOURCE") or os.environ.get("MNIST_TEST_DATA")
    folder = Path(chosen) if chosen else PROJECT_ROOT.parent / "shared" / "data" / "mnist"
    if not (folder / "train-images-idx3-ubyte.gz").exists():
        raise SystemExit(f"no MNIST files in {folder}: set MNIST_SOURCE to a folder holding them")
    return str(folder.resolve())


def stages(log_text: str) -> tuple[datetime | None, list[tuple[str, float]]]:
    """(first node's start, [(stage, seconds)]) from a run's logs/info.log records."""
    first, ends = None, {}
    for line in log_text.splitlines():
        match = LOG_LINE.match(line)
        if not match:
            continue
        when = datetime.strptime(match.group(1), "%Y-%m-%d %H:%M:%S,%f")
        if first is None and RUNNING.search(match.group(2)):
            first = when
        if done := COMPLETED.search(match.group(2)):
            ends[done.group(1) or "(no namespace)"] = when
    previous, timings = first, []
    for name, end in sorted(ends.items(), key=lambda item: item[1]):
        timings.append((name, (end - previous).total_seconds()))
        previous = end
    return first, timings


def make_run(clone: Path, env: dict[str, str]) -> dict:
    """``make run`` in ``clone``; its times, read as its output arrives."""
    load_start = os.getloadavg()
    began = time.perf_counter()
    kedro_at = None
    log_start = datetime.now()
    process = subprocess.Popen(
        ["make", "run"], cwd=clone, env=env, text=True,
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
    )  # fmt: skip
    tail: list[str] = []
    steps: list[tuple[float, str]] = []  # the install's commands, as make echoes them
    for line in process.stdout:
        if kedro_at is None and KEDRO_COMMAND in line:
            kedro_at = time.perf_counter() - began
            kedro_wall = datetime.now()
        elif kedro_at is None and INSTALL_STEP.search(line):
            steps.append((time.perf_counter() - began, INSTALL_STEP.search(line).group(0)))
        tail = [*tail, line][-40:]
    code = process.wait()
    wall = time.perf_counter() - began
    if code:
        sys.stdout.writelines(tail)
        raise SystemExit(f"make run failed in {clone} (exit {code})")
    log = clone / "logs" / "info.log"
    text = log.read_text() if log.exists() else ""
    # This run's records only: the second run appends to the first's log.
    since = log_start.replace(microsecond=0)
    text = "\n".join(
        line for line in text.splitlines()
        if (m := LOG_LINE.match(line))
        and datetime.strptime(m.group(1), "%Y-%m-%d %H:%M:%S,%f") >= since
    )  # fmt: skip
    first_node, stage_times = stages(text)
    summary = json.loads((clone / "data" / "08_reporting" / "training_summary.json").read_text())
    return {
        "wall_s": wall,
        "install_s": kedro_at if kedro_at is not None else float("nan"),
        "install_steps": [
            (name, end - start)
            for (start, name), end in zip(
                steps, [*(t for t, _ in steps[1:]), kedro_at or wall][: len(steps)], strict=True
            )
        ],
        "kedro_start_s": (first_node - kedro_wall).total_seconds() if first_node else float("nan"),
        "stages": stage_times,
        "load_start": load_start,
        "load_end": os.getloadavg(),
        "images_per_s": summary.get("images_per_second") or summary.get("images_per_s"),
    }


def report(title: str, result: dict) -> None:
    """Print one run's figures."""
    load = "load average {:.1f} → {:.1f} (1 min)".format(
        result["load_start"][0], result["load_end"][0]
    )
    print(f"\n{title}: {result['wall_s']:.1f} s wall ({load})")
    print(f"  install (before kedro run)   {result['install_s']:6.1f} s")
    for name, seconds in result["install_steps"]:
        print(f"    {name:<26} {seconds:6.1f} s")
    print(f"  kedro start (to first node)  {result['kedro_start_s']:6.1f} s")
    for name, seconds in result["stages"]:
        print(f"  stage {name:<22} {seconds:6.1f} s")
    rest = result["wall_s"] - result["install_s"] - result["kedro_start_s"]
    rest -= sum(seconds for _, seconds in result["stages"])
    print(f"  after the last node          {rest:6.1f} s (run summary, MLflow run end, exit)")
    print(f"  training images/s            {result['images_per_s']}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--keep", action="store_true", help="keep the clone (path printed)")
    args = parser.parse_args()
    env = {**os.environ, "MNIST_SOURCE": mnist_source(), "KEDRO_DISABLE_TELEMETRY": "1"}
    env.pop("VIRTUAL_ENV", None)
    head = subprocess.run(
        ["git", "-C", str(PROJECT_ROOT), "rev-parse", "--short", "HEAD"],
        capture_output=True, text=True, check=True,
    ).stdout.strip()  # fmt: skip
    folder = Path(tempfile.mkdtemp(prefix="mnist-make-run-"))
    clone = folder / "mnist-pipeline"
    try:
        subprocess.run(
            ["git", "clone", "--quiet", str(PROJECT_ROOT), str(clone)], check=True
        )  # fmt: skip
        print(f"clone of {head} in {clone}; MNIST from {env['MNIST_SOURCE']}")
        print(f"{os.cpu_count()} CPUs; {datetime.now():%Y-%m-%d %H:%M}")
        fresh = make_run(clone, env)
        report("make run, fresh clone (no .venv, package cache warm)", fresh)
        warm = make_run(clone, env)
        report("make run again (.venv present)", warm)
    finally:
        if args.keep:
            print(f"\nclone kept in {clone}")
        else:
            shutil.rmtree(folder, ignore_errors=True)


if __name__ == "__main__":
    main()
