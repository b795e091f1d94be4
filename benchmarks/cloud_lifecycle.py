"""Benchmark: what object storage costs. The same lifecycle in one run, stage by stage:
local disk (MNIST in a folder, data path and MLflow artifacts on disk behind two mlflow
servers) against the two "clouds" (MNIST, shards, checkpoints and model on Azure Blob via
Azurite; MLflow artifacts on wasbs:// and gs:// behind the servers), as `make run-cloud`.

Usage::

    MNIST_TEST_DATA=../shared/data/mnist python benchmarks/cloud_lifecycle.py [--kedro-args ...]

Prints one row per stage: seconds locally, seconds in the cloud run, and the difference.
Emulators on the same machine measure the protocols' overhead (HTTP, uploads, downloads),
not a real network's latency.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _run(mode: str, folder: Path, kedro_args: str) -> dict[str, float]:
    report = folder / f"{mode}.json"
    command = [sys.executable, "-m", "tools.cloud.run_cloud", "--dir", str(folder / mode),
               "--report", str(report), "--kedro-args", kedro_args]  # fmt: skip
    if mode == "local":
        command.append("--local")
    subprocess.run(command, cwd=ROOT, check=True)
    return json.loads(report.read_text())["timings_s"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--kedro-args", default="", help="e.g. '--params training.epochs=1'")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="cloud-benchmark-") as tmp:
        local = _run("local", Path(tmp), args.kedro_args)
        cloud = _run("cloud", Path(tmp), args.kedro_args)
    print(f"\n{'stage':<16}{'local s':>10}{'cloud s':>10}{'cloud - local':>15}")
    for stage in [s for s in cloud if s in local]:
        diff = cloud[stage] - local[stage]
        print(f"{stage:<16}{local[stage]:>10.1f}{cloud[stage]:>10.1f}{diff:>+15.1f}")
    total_local, total_cloud = sum(local.values()), sum(cloud.values())
    print(
        f"{'total':<16}{total_local:>10.1f}{total_cloud:>10.1f}{total_cloud - total_local:>+15.1f}"
    )
    print(f"(emulators start: {cloud.get('emulators', 0):.1f} s, in the cloud total)")


if __name__ == "__main__":
    main()
