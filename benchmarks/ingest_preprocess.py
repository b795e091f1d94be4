"""Benchmark: time and peak memory of ingestion + preprocessing of all 70,000 MNIST images.

Each measurement runs in a fresh Python process (so its peak RSS is its own):

* ``baseline``   – the least any ingestion can do: gunzip the four files and view them
                   as numpy arrays (no checks, no outputs);
* ``ingestion``  – ``kedro run --pipelines ingestion`` with an empty cache (copy + verify);
* ``ingestion (cached)`` – the same again, served from the cache;
* ``preprocessing`` – ``kedro run --pipelines preprocessing`` (scale, split, Parquet shards).

Usage::

    MNIST_SOURCE=../shared/data/mnist python benchmarks/ingest_preprocess.py [--repeat 3]

Prints a table (median of the repeats) and each figure's ratio to the baseline.
"""

from __future__ import annotations

import argparse
import gzip
import json
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

PROJECT_ROOT = Path(__file__).resolve().parents[1]
FILES = (
    "train-images-idx3-ubyte.gz",
    "train-labels-idx1-ubyte.gz",
    "t10k-images-idx3-ubyte.gz",
    "t10k-labels-idx1-ubyte.gz",
)


def _peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _phase(name: str, source: str, data_root: str) -> dict[str, float]:
    """Run one phase in this (fresh) process; return its wall time and peak RSS."""
    os.environ.update(
        {
            "MNIST_SOURCE": source,
            "MNIST_DATA_ROOT": data_root,
            "MNIST_CACHE_DIR": f"{data_root}/01_raw/mnist",
            "MLFLOW_SANDBOX_TRACKING_URI": f"sqlite:///{data_root}/sandbox.db",
            "MLFLOW_SANDBOX_ARTIFACT_LOCATION": f"{data_root}/sandbox-artifacts",
            "KEDRO_DISABLE_TELEMETRY": "1",
        }
    )
    if name == "baseline":
        import numpy as np

        start = time.perf_counter()
        arrays = [
            np.frombuffer(gzip.decompress(Path(source, f).read_bytes()), dtype=np.uint8)
            for f in FILES
        ]
        assert sum(a.size for a in arrays) > 0
        return {"seconds": time.perf_counter() - start, "peak_rss_mb": _peak_rss_mb()}

    from kedro.framework.session import KedroSession
    from kedro.framework.startup import bootstrap_project

    bootstrap_project(PROJECT_ROOT)
    pipeline = name.split(maxsplit=1)[0]
    # Session creation (config, hooks, MLflow setup) is timed apart from the pipeline itself.
    start = time.perf_counter()
    with KedroSession.create(project_path=PROJECT_ROOT, env="azure") as session:
        ready = time.perf_counter()
        session.run(pipeline_names=[pipeline])
        done = time.perf_counter()
    return {
        "seconds": done - ready,
        "session_setup_seconds": ready - start,
        "peak_rss_mb": _peak_rss_mb(),
    }


def _measure(name: str, source: str, data_root: str) -> dict[str, float]:
    result = subprocess.run(
        [sys.executable, __file__, "--phase", name, "--source", source, "--data-root", data_root],
        capture_output=True,
        text=True,
        check=False,
        cwd=PROJECT_ROOT,
    )
    if result.returncode != 0:
        sys.exit(f"phase {name!r} failed:\n{result.stderr[-3000:]}")
    return json.loads(result.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--phase", help=argparse.SUPPRESS)
    parser.add_argument("--source", default=os.environ.get("MNIST_SOURCE", ""))
    parser.add_argument("--data-root", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.phase:
        print(json.dumps(_phase(args.phase, args.source, args.data_root)))
        return
    if not args.source or not Path(args.source, FILES[0]).is_file():
        sys.exit("set MNIST_SOURCE (or --source) to a local folder with the four MNIST .gz files")

    phases = ("baseline", "ingestion", "ingestion (cached)", "preprocessing")
    results: dict[str, list[dict[str, float]]] = {name: [] for name in phases}
    for repeat in range(args.repeat):
        data_root = tempfile.mkdtemp(prefix="mnist-bench-")
        try:
            for name in phases:
                results[name].append(_measure(name, args.source, data_root))
                print(f"  run {repeat + 1}/{args.repeat} {name}: {results[name][-1]}", flush=True)
        finally:
            shutil.rmtree(data_root, ignore_errors=True)

    def median(name: str, key: str) -> float:
        return statistics.median(r.get(key, 0.0) for r in results[name])

    base = median("baseline", "seconds")
    print(f"\nIngestion + preprocessing of 70,000 MNIST images, median of {args.repeat} runs")
    print(f"{'phase':<22}{'seconds':>10}{'× baseline':>12}{'setup s':>10}{'peak RSS MB':>13}")
    for name in phases:
        seconds = median(name, "seconds")
        print(
            f"{name:<22}{seconds:>10.2f}{seconds / base:>12.1f}"
            f"{median(name, 'session_setup_seconds'):>10.2f}{median(name, 'peak_rss_mb'):>13.0f}"
        )
    total = median("ingestion", "seconds") + median("preprocessing", "seconds")
    print(f"{'ingestion+preprocessing':<22}{total:>10.2f}{total / base:>12.1f}")
    print(f"throughput: {70_000 / total:,.0f} images/s (cold cache)")


if __name__ == "__main__":
    main()
