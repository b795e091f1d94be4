"""Serving speed: the project's model server vs plain ``mlflow models serve`` of the same model.

Both serve the same registered pyfunc (the project's self-contained model) and are asked
the same TensorFlow-Serving bodies (``{"instances": [...]}``) by the same load generator
(threads, one keep-alive session each), in the same run:

* concurrency 1, 8 and 32 × batch 1 and 32 images: requests/s, images/s, p50/p95/p99, errors;
* a soak of ≥ 10,000 single-image requests at concurrency 16 against the project's server;
* the ratio of requests/s at concurrency 8, batch 1;
* the cost of the inference log: single-image p50 at concurrency 1 and 8 of the project's
  server without and with its inference log, alternated in the same run (goal ≤ 10 %).
  ``--logging-only`` runs just this part.

Usage (from the project root)::

    .venv/bin/python benchmarks/serving.py               # the CNN of parameters_training.yml
    .venv/bin/python benchmarks/serving.py --model-uri models:/mnist_cnn@production \\
        --registry-uri sqlite:///mlruns/production.db               # the promoted model

Every load loop is bounded in requests and in seconds. Figures are printed (and written
to ``--json`` if given), never asserted.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import numpy as np
import requests

PROJECT_ROOT = Path(__file__).resolve().parents[1]
HOST = "127.0.0.1"
CONCURRENCY = (1, 8, 32)
BATCHES = (1, 32)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind((HOST, 0))
        return int(sock.getsockname()[1])


# ── the model ────────────────────────────────────────────────────────────────────────────
def project_cnn() -> Any:
    """The trained-model architecture of conf/base/parameters_training.yml (untrained weights:
    speed does not depend on them)."""
    import yaml

    from mnist_pipeline.training.model import build_core_model, with_preprocessing

    params = yaml.safe_load((PROJECT_ROOT / "conf/base/parameters_training.yml").read_text())
    return with_preprocessing(build_core_model(params["training"]["model"]))


def register_project_pyfunc(model: Any, root: Path) -> tuple[str, str]:
    """Log ``model`` as the project's pyfunc (what promotion registers); alias ``production``."""
    import mlflow
    from mlflow import MlflowClient

    from mnist_pipeline.registry.model import log_classifier

    uri = f"sqlite:///{root / 'bench-pyfunc.db'}"
    client = MlflowClient(tracking_uri=uri, registry_uri=uri)
    experiment = client.create_experiment("bench", artifact_location=(root / "art2").as_uri())
    mlflow.set_tracking_uri(uri)
    mlflow.set_registry_uri(uri)
    with mlflow.start_run(experiment_id=experiment):
        info = log_classifier(model, np.zeros((3, 28, 28), np.uint8))
        version = mlflow.register_model(info.model_uri, "bench_cnn")
    client.set_registered_model_alias("bench_cnn", "production", version.version)
    return uri, "models:/bench_cnn@production"


# ── the servers ──────────────────────────────────────────────────────────────────────────
class MlflowModelsServe:
    """``mlflow models serve --env-manager local`` in its own process group."""

    def __init__(self, model_uri: str, registry_uri: str, log: Path) -> None:
        self.port = free_port()
        self.url = f"http://{HOST}:{self.port}"
        env = dict(os.environ)
        env.update(MLFLOW_TRACKING_URI=registry_uri, MLFLOW_REGISTRY_URI=registry_uri)
        env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
        command = [
            sys.executable, "-m", "mlflow", "models", "serve", "-m", model_uri,
            "--env-manager", "local", "-h", HOST, "-p", str(self.port),
        ]  # fmt: skip
        with log.open("wb") as output:
            self.process = subprocess.Popen(
                command, env=env, stdout=output, stderr=subprocess.STDOUT, start_new_session=True
            )
        self.log = log

    def wait(self, timeout_s: float = 300) -> None:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"mlflow models serve exited: {self.log.read_text()[-2000:]}")
            with contextlib.suppress(requests.RequestException):
                if requests.get(f"{self.url}/ping", timeout=2).status_code == 200:
                    return
            time.sleep(0.5)
        raise RuntimeError(f"mlflow models serve not ready: {self.log.read_text()[-2000:]}")

    @property
    def predict_url(self) -> str:
        return f"{self.url}/invocations"

    def stop(self) -> None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.process.pid, signal.SIGTERM)
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.process.wait(timeout=15)
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.process.pid, signal.SIGKILL)


# ── the load ─────────────────────────────────────────────────────────────────────────────
def load(
    url: str, body: bytes, *, images: int, concurrency: int, max_requests: int, max_seconds: float
) -> dict[str, Any]:
    """``max_requests`` POSTs of ``body`` from ``concurrency`` threads, at most ``max_seconds``."""
    latencies: list[float] = []
    errors: list[str] = []
    lock = threading.Lock()
    remaining = [max_requests]
    deadline = time.perf_counter() + max_seconds

    def worker() -> None:
        with requests.Session() as session:
            while time.perf_counter() < deadline:
                with lock:
                    if remaining[0] <= 0:
                        return
                    remaining[0] -= 1
                began = time.perf_counter()
                try:
                    answer = session.post(
                        url, data=body, headers={"Content-Type": "application/json"}, timeout=60
                    )
                    ok = answer.status_code == 200
                    problem = "" if ok else f"HTTP {answer.status_code}: {answer.text[:120]}"
                except requests.RequestException as exc:
                    ok, problem = False, type(exc).__name__
                elapsed = time.perf_counter() - began
                with lock:
                    latencies.append(elapsed)
                    if not ok:
                        errors.append(problem)

    threads = [threading.Thread(target=worker) for _ in range(concurrency)]
    began = time.perf_counter()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    wall = time.perf_counter() - began
    ms = np.asarray(latencies) * 1000 if latencies else np.zeros(1)
    return {
        "concurrency": concurrency,
        "batch": images,
        "requests": len(latencies),
        "errors": len(errors),
        "first_error": errors[0] if errors else "",
        "seconds": round(wall, 2),
        "requests_per_s": round(len(latencies) / wall, 1),
        "images_per_s": round(len(latencies) * images / wall, 1),
        "p50_ms": round(float(np.percentile(ms, 50)), 2),
        "p95_ms": round(float(np.percentile(ms, 95)), 2),
        "p99_ms": round(float(np.percentile(ms, 99)), 2),
    }


def bodies() -> dict[int, bytes]:
    """``{"instances": ...}`` of (batch, 28, 28) float pixels 0–255: the registered model's
    signature, which ``mlflow models serve`` enforces (the project server also takes a
    trailing channel axis)."""
    rng = np.random.default_rng(0)
    return {
        batch: json.dumps(
            {"instances": rng.integers(0, 256, (batch, 28, 28)).astype(float).tolist()}
        ).encode()
        for batch in BATCHES
    }


def sweep(name: str, url: str, max_requests: int, max_seconds: float) -> list[dict[str, Any]]:
    payloads = bodies()
    load(url, payloads[1], images=1, concurrency=2, max_requests=20, max_seconds=30)  # warm-up
    rows = []
    for batch in BATCHES:
        for concurrency in CONCURRENCY:
            row = load(
                url,
                payloads[batch],
                images=batch,
                concurrency=concurrency,
                max_requests=max_requests,
                max_seconds=max_seconds,
            )
            row["server"] = name
            rows.append(row)
            print(_format(row), flush=True)
    return rows


HEADER = (
    f"{'server':<16}{'conc':>5}{'batch':>6}{'requests':>9}{'errors':>7}{'req/s':>9}"
    f"{'images/s':>10}{'p50 ms':>9}{'p95 ms':>9}{'p99 ms':>9}"
)


def logging_cost(
    model_uri: str, registry_uri: str, root: Path, max_requests: int, max_seconds: float
) -> list[dict[str, Any]]:
    """p50 of single images at concurrency 1 and 8, without and with the inference log.

    Both servers run at once (same model, same threads); rounds alternate between them
    so that a busy machine slows both alike; the median of the rounds' p50s is reported.
    """
    from mnist_pipeline.serving import ServerProcess, ServerSettings

    plain = ServerProcess(model_uri, registry_uri, ServerSettings(port=0, inter_op_threads=1))
    logged = ServerProcess(
        model_uri,
        registry_uri,
        ServerSettings(port=0, inter_op_threads=1, inference_log=str(root / "inference-log")),
    )
    body = bodies()[1]
    rows: list[dict[str, Any]] = []
    try:
        plain.start()
        logged.start()
        for server in (plain, logged):  # warm-up
            load(server.predict_url, body, images=1, concurrency=2, max_requests=50, max_seconds=30)
        for concurrency in (1, 8):
            p50s: dict[str, list[float]] = {"without log": [], "with log": []}
            for _ in range(3):
                for name, server in (("without log", plain), ("with log", logged)):
                    row = load(
                        server.predict_url, body, images=1, concurrency=concurrency,
                        max_requests=max_requests, max_seconds=max_seconds,
                    )  # fmt: skip
                    p50s[name].append(row["p50_ms"])
            base, with_log = (float(np.median(p50s[k])) for k in ("without log", "with log"))
            row = {
                "concurrency": concurrency,
                "p50_ms_without_log": base,
                "p50_ms_with_log": with_log,
                "overhead_percent": round(100 * (with_log - base) / base, 1),
            }
            rows.append(row)
            print(
                f"inference log, concurrency {concurrency}: p50 {base:.2f} ms without, "
                f"{with_log:.2f} ms with ({row['overhead_percent']:+.1f} %, goal ≤ 10 %)",
                flush=True,
            )
        status = requests.get(f"{logged.url}/v1/models/{logged.info['name']}", timeout=10).json()
        print(f"inference log status: {status.get('inference_log')}")
    finally:
        plain.stop()
        logged.stop()
    return rows


def _format(row: dict[str, Any]) -> str:
    return (
        f"{row['server']:<16}{row['concurrency']:>5}{row['batch']:>6}{row['requests']:>9}"
        f"{row['errors']:>7}{row['requests_per_s']:>9}{row['images_per_s']:>10}"
        f"{row['p50_ms']:>9}{row['p95_ms']:>9}{row['p99_ms']:>9}"
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model-uri", default=None, help="e.g. models:/mnist_cnn@production")
    parser.add_argument("--registry-uri", default=os.environ.get("MLFLOW_PRODUCTION_REGISTRY_URI"))
    parser.add_argument("--requests", type=int, default=3000, help="per configuration, ours")
    parser.add_argument("--mlflow-requests", type=int, default=400, help="per configuration")
    parser.add_argument("--seconds", type=float, default=15.0, help="per configuration, at most")
    parser.add_argument("--soak", type=int, default=10_000, help="requests at concurrency 16")
    parser.add_argument("--json", type=Path, default=None, help="also write the figures here")
    parser.add_argument(
        "--logging-only", action="store_true", help="only the inference log's cost on p50"
    )
    args = parser.parse_args()
    os.environ.setdefault("KEDRO_DISABLE_TELEMETRY", "1")

    from mnist_pipeline.serving import ServerProcess, ServerSettings

    with tempfile.TemporaryDirectory(prefix="bench-serving-") as tmp:
        root = Path(tmp)
        if args.model_uri:
            ours_uri, ours_registry = args.model_uri, args.registry_uri
            print(f"model: {args.model_uri} from {args.registry_uri}")
        else:
            # The project server serves only the project's pyfunc: register the CNN that way.
            ours_registry, ours_uri = register_project_pyfunc(project_cnn(), root)
            print("model: the CNN of conf/base/parameters_training.yml (untrained weights)")
        print(f"cores: {os.cpu_count()}, load average: {os.getloadavg()[0]:.1f}\n")
        if args.logging_only:
            rows = logging_cost(ours_uri, ours_registry, root, args.requests, args.seconds)
            if args.json:
                args.json.write_text(json.dumps({"inference_log": rows}, indent=2))
            return 0

        ours = ServerProcess(ours_uri, ours_registry, ServerSettings(port=0, inter_op_threads=1))
        plain = MlflowModelsServe(ours_uri, ours_registry, root / "mlflow-serve.log")
        rows: list[dict[str, Any]] = []
        try:
            ours.start()
            plain.wait()
            print(HEADER)
            rows += sweep("project server", ours.predict_url, args.requests, args.seconds)
            rows += sweep("mlflow serve", plain.predict_url, args.mlflow_requests, args.seconds)
            soak = load(
                ours.predict_url,
                bodies()[1],
                images=1,
                concurrency=16,
                max_requests=args.soak,
                max_seconds=600,
            )
            soak["server"] = "project (soak)"
            rows.append(soak)
            print(_format(soak))
        finally:
            ours.stop()
            plain.stop()

    def pick(server: str, concurrency: int, batch: int) -> dict[str, Any]:
        return next(
            r for r in rows
            if r["server"] == server and r["concurrency"] == concurrency and r["batch"] == batch
        )  # fmt: skip

    ratio = pick("project server", 8, 1)["requests_per_s"] / max(
        pick("mlflow serve", 8, 1)["requests_per_s"], 1e-9
    )
    single = pick("project server", 1, 1)["p50_ms"]
    print(
        f"\nsingle-image p50: {single} ms (target ≤ 10) | requests/s at concurrency 8 vs plain "
        f"mlflow serve: {ratio:.1f}× (target ≥ 3) | soak: {soak['requests']:,} requests at "
        f"concurrency 16, {soak['errors']} errors (target 0, ≥ 10,000 requests)"
    )
    if args.json:
        args.json.write_text(json.dumps({"rows": rows, "ratio_c8": ratio}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
