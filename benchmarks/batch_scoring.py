"""Batch-scoring speed: the Spark job on ``local[*]`` and on a two-worker standalone cluster,
against the project's REST server at batch 32, on the same PNG files, in one run.

Every path includes the PNG decode and the client's MNIST convention
(:func:`mnist_pipeline.client.image.load_mnist_image`): the Spark executors do both before
predicting; for the REST server the load generator does both, then POSTs batches of 32.

Also measured: ``mlflow.pyfunc.spark_udf`` on the same images (decoded by a first
``mapInPandas`` stage into an array column, then the UDF), against the project's fused
``mapInPandas`` job (decode + convention + predict + write in one stage).

Usage (from the project root)::

    .venv/bin/python benchmarks/batch_scoring.py --images 10000
    .venv/bin/python benchmarks/batch_scoring.py --images 70000 --skip-cluster

The model is the CNN of conf/base/parameters_training.yml with untrained weights (speed does
not depend on them), logged as the project's pyfunc. Spark start-up is not counted; the
model's shipping to the executors is. Figures are printed (and written to ``--json``).

Each path is timed cold and warm, like for like:

- **cold**: the Spark job on a fresh session (each executor's Python worker starts, imports
  TensorFlow and loads the model inside the clock); the REST server started inside the clock
  (its process starts, imports TensorFlow and loads the model, then answers).
- **warm**: the same job again on the same session (the session reuses Python workers, as
  the project's batch-scoring runs do: each keeps its loaded model); the REST server already
  up with its model loaded.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import numpy as np
import requests

PROJECT_ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(PROJECT_ROOT))


def write_pngs(folder: Path, count: int) -> None:
    """``count`` real MNIST test digits as photos (dark ink on paper, off-centre), cycling."""
    from mnist_pipeline.datasets.idx import parse_idx
    from tests.client.render import render

    source = Path(os.environ.get("MNIST_TEST_DATA", PROJECT_ROOT.parent / "shared/data/mnist"))
    images = parse_idx((source / "t10k-images-idx3-ubyte.gz").read_bytes(), "t10k")
    folder.mkdir(parents=True)
    for index in range(count):
        render(images[index % len(images)], scale=2, canvas=(80, 70), offset=(10, 6)).save(
            folder / f"{index:06d}.png"
        )


def register(root: Path) -> tuple[str, str]:
    import mlflow
    import yaml

    from mnist_pipeline.registry.model import log_classifier
    from mnist_pipeline.training.model import build_core_model, with_preprocessing

    params = yaml.safe_load((PROJECT_ROOT / "conf/base/parameters_training.yml").read_text())
    model = with_preprocessing(build_core_model(params["training"]["model"]))
    uri = f"sqlite:///{root / 'bench.db'}"
    mlflow.set_tracking_uri(uri)
    mlflow.set_registry_uri(uri)
    client = mlflow.MlflowClient()
    experiment = client.create_experiment("bench", artifact_location=(root / "art").as_uri())
    with mlflow.start_run(experiment_id=experiment):
        info = log_classifier(model, np.zeros((3, 28, 28), np.uint8))
    version = mlflow.register_model(info.model_uri, "bench_cnn").version
    client.set_registered_model_alias("bench_cnn", "production", version)
    return uri, "bench_cnn"


def _timed_job(spark: Any, items: list, pinned: Any, registry: str, output: Path) -> dict[str, Any]:
    from mnist_pipeline.scoring.spark import run_scoring_job

    started = time.perf_counter()
    manifest = run_scoring_job(spark, items, pinned, registry, output=str(output))
    seconds = time.perf_counter() - started
    return {
        "images": len(items),
        "seconds": round(seconds, 1),
        "images_per_s": round(len(items) / seconds, 1),
        "partitions": manifest["partitions"],
        "failed": manifest["summary"]["failed"],
    }


def spark_job(master: str, folder: Path, output: Path, registry: str, name: str) -> dict[str, Any]:
    from mnist_pipeline.scoring.inputs import list_inputs
    from mnist_pipeline.scoring.model import pin_model
    from tests.training.conftest import spark_session

    spark = spark_session(master, app="bench-batch-scoring", reuse_workers=True)
    try:
        items = list_inputs(str(folder))
        pinned = pin_model(name, "production", registry)
        row = _timed_job(spark, items, pinned, registry, output / "cold")
        row["warm"] = _timed_job(spark, items, pinned, registry, output / "warm")
        if master.startswith("local"):
            row["spark_udf"] = spark_udf_job(spark, items, pinned, registry, row["partitions"])
        return row
    finally:
        spark.stop()


def spark_udf_job(
    spark: Any, items: list, pinned: Any, registry: str, partitions: int
) -> dict[str, Any]:
    """The same images through ``mlflow.pyfunc.spark_udf`` (decode stage + UDF stage), in as
    many partitions as the fused job."""
    import pandas as pd
    from pyspark.sql.functions import col

    from mnist_pipeline.registry.store import uris as registry_context
    from mnist_pipeline.scoring.inputs import read_item

    def decode(frames):
        for frame in frames:
            rows = []
            for uri in frame["uri"]:
                from mnist_pipeline.scoring.inputs import InputItem

                for record in read_item(InputItem("image", uri)):
                    if record.pixels is not None:
                        rows.append({"uri": uri, "image": record.pixels.astype(np.float32).ravel()})
            yield pd.DataFrame(rows, columns=["uri", "image"])

    try:
        import mlflow

        paths = spark.createDataFrame([(i.uri,) for i in items], "uri string").repartition(
            partitions
        )
        started = time.perf_counter()  # shipping the model counts, as for the fused job
        with registry_context(registry):
            udf = mlflow.pyfunc.spark_udf(
                spark, pinned.model_uri, result_type="array<float>", env_manager="local"
            )
        decoded = paths.mapInPandas(decode, "uri string, image array<float>")
        # The sum needs every probability: a bare count() would let Spark prune the
        # (deterministic) UDF's column and never run the model.
        total = decoded.withColumn("p", udf(col("image"))).selectExpr("sum(size(p))").first()[0]
        count = int(total) // 10
        seconds = time.perf_counter() - started
        return {
            "images": count,
            "seconds": round(seconds, 1),
            "images_per_s": round(count / seconds, 1),
        }
    except Exception as exc:  # report, do not hide
        return {"error": f"{type(exc).__name__}: {str(exc).splitlines()[0][:300]}"}


def rest(folder: Path, registry: str, name: str, concurrency: int = 2) -> dict[str, Any]:
    """PNG → MNIST convention in the load generator, POST batches of 32 to the project server."""
    from mnist_pipeline.client.image import load_mnist_image
    from mnist_pipeline.serving import ServerProcess, ServerSettings

    files = sorted(folder.glob("*.png"))
    batches = [files[i : i + 32] for i in range(0, len(files), 32)]
    lock, cursor, errors = threading.Lock(), [0], []
    server = ServerProcess(f"models:/{name}@production", registry, ServerSettings(port=0))
    started_cold = time.perf_counter()
    server.start()
    start_s = time.perf_counter() - started_cold

    def worker() -> None:
        with requests.Session() as session:
            while True:
                with lock:
                    if cursor[0] >= len(batches):
                        return
                    batch = batches[cursor[0]]
                    cursor[0] += 1
                images = np.stack([load_mnist_image(path) for path in batch])
                answer = session.post(
                    server.predict_url, json={"instances": images.tolist()}, timeout=120
                )
                if answer.status_code != 200:
                    errors.append(answer.status_code)

    try:
        started = time.perf_counter()
        threads = [threading.Thread(target=worker) for _ in range(concurrency)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        seconds = time.perf_counter() - started
    finally:
        server.stop()
    return {
        "images": len(files),
        "seconds": round(seconds, 1),
        "images_per_s": round(len(files) / seconds, 1),
        "concurrency": concurrency,
        "errors": len(errors),
        # the server's start and model load, then the same requests: the cold figure
        "cold": {
            "seconds": round(start_s + seconds, 1),
            "start_s": round(start_s, 1),
            "images_per_s": round(len(files) / (start_s + seconds), 1),
        },
    }


def ratios(results: dict[str, Any]) -> dict[str, float]:
    """Spark's images/s over the REST server's, cold against cold and warm against warm."""
    rest_row = results["REST batch 32"]
    out = {}
    for label in ("local[*]", "cluster (2 workers)"):
        if label in results:
            row = results[label]
            out[f"{label} cold / REST cold"] = (
                row["images_per_s"] / rest_row["cold"]["images_per_s"]
            )
            out[f"{label} warm / REST warm"] = (
                row["warm"]["images_per_s"] / rest_row["images_per_s"]
            )
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--images", type=int, default=10_000)
    parser.add_argument("--skip-cluster", action="store_true")
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args()
    os.environ.setdefault("SPARK_LOCAL_IP", "127.0.0.1")
    results: dict[str, Any] = {"images": args.images, "cores": os.cpu_count()}
    with tempfile.TemporaryDirectory(prefix="bench-batch-") as tmp:
        root = Path(tmp)
        started = time.perf_counter()
        write_pngs(root / "pngs", args.images)
        print(f"{args.images} PNGs written in {time.perf_counter() - started:.0f} s", flush=True)
        registry, name = register(root)
        print(f"cores: {os.cpu_count()}, load average: {os.getloadavg()[0]:.1f}", flush=True)
        results["local[*]"] = spark_job(
            "local[*]", root / "pngs", root / "out-local", registry, name
        )
        print("local[*]:", results["local[*]"], flush=True)
        if not args.skip_cluster:
            from tests.integration.spark_cluster import StandaloneCluster

            cluster = StandaloneCluster(root / "cluster", workers=2).start()
            try:
                results["cluster (2 workers)"] = spark_job(
                    cluster.master_url, root / "pngs", root / "out-cluster", registry, name
                )
            finally:
                cluster.close()
            print("2-worker cluster:", results["cluster (2 workers)"], flush=True)
        results["REST batch 32"] = rest(root / "pngs", registry, name)
        print("REST server, batch 32:", results["REST batch 32"], flush=True)
        results["ratios"] = ratios(results)
        for label, value in results["ratios"].items():
            print(f"{label}: {value:.2f}x", flush=True)
        print(f"load average at the end: {os.getloadavg()[0]:.1f}", flush=True)
    if args.json:
        args.json.write_text(json.dumps(results, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
