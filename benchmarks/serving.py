"""Serving speed: the project's model server vs plain ``mlflow models serve`` of the same model.

Both serve the same registered pyfunc (the project's self-contained model): the project's
server (``python -m mnist_pipeline.serving``, what ``kedro serve`` runs) and ``mlflow models
serve --env-manager uv`` in the model's own environment (``.mlflow-envs/``, built by ``make
install``), as docs/serving.md tells users to run it. Both are asked the same TensorFlow
Serving bodies (``{"instances": [...]}``) over keep-alive connections by the same load
generator: **wrk** (compiled, one epoll thread), so that the client is not what limits the
figures. Its own CPU time (from ``wait4``'s rusage) is printed as a share of the run's wall
time × cores, and so is each server's (its process group's, from ``/proc``).

Default run (about 5 minutes):

* the machine's training images/s (a short fixed burst of the training CNN), dated, with
  the load average: machines differ 2–4× from day to day, ratios much less;
* **the two ratios**: concurrency 8 × 1 image per request (requests/s) and concurrency 8 ×
  32 images per request (images/s). Rounds alternate between the servers (the order flips
  every round) so that a busy machine slows both alike; a round's ratio compares the two
  runs next to each other, and the figure is the median of the rounds' ratios (their range
  and each server's median are printed too);
* the project server's single-image p50 at concurrency 1, and a soak of 10,000 single-image
  requests at concurrency 16 against it.

``--sweep`` adds concurrency 1, 8, 32 × batch 1, 32 on both servers; ``--logging-only``
runs just the inference log's cost (single-image p50 at concurrency 1 and 8 without and
with the log, alternated); ``--mlflow-env project`` serves MLflow from the project's venv
instead (``--env-manager local``: uvicorn with uvloop and httptools, as the project server
has; the model's environment has plain uvicorn, as MLflow requires it).

Usage (from the project root; needs ``make install`` and wrk 4.1.0)::

    .venv/bin/python benchmarks/serving.py               # the CNN of parameters_training.yml
    .venv/bin/python benchmarks/serving.py --model-uri models:/mnist_cnn@production \\
        --registry-uri sqlite:///mlruns/production.db               # the promoted model

wrk: ``apt-get install wrk`` (Debian 12's 4.1.0; ``brew install wrk`` on macOS). Every load
run is bounded in requests (the Lua script stops wrk after its share; answers already in
flight still count) and in seconds (``-d``),
and goes to 127.0.0.1 only. Figures are printed (and written to ``--json`` if given),
never asserted.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime
import json
import os
import shutil
import socket
import statistics
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
WRK_VERSION = "4.1.0"  # Debian 12's; the figures in docs/serving.md were measured with it
CORES = os.cpu_count() or 1


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind((HOST, 0))
        return int(sock.getsockname()[1])


def load_average() -> str:
    return "/".join(f"{x:.1f}" for x in os.getloadavg())


# ── the model ────────────────────────────────────────────────────────────────────────────
def training_params() -> dict[str, Any]:
    import yaml

    params = yaml.safe_load((PROJECT_ROOT / "conf/base/parameters_training.yml").read_text())
    return params["training"]


def project_cnn() -> Any:
    """The trained-model architecture of conf/base/parameters_training.yml (untrained weights:
    speed does not depend on them)."""
    from mnist_pipeline.training.model import build_core_model, with_preprocessing

    return with_preprocessing(build_core_model(training_params()["model"]))


def training_images_per_s(steps: int = 60) -> float:
    """This machine's training speed today: ``steps`` optimizer steps of the training CNN
    (conf/base/parameters_training.yml: model, optimizer, batch size) on in-memory images,
    after a warm-up. A yardstick for the day's machine (a few seconds), not a training
    figure: training_modes.py measures the real input pipeline."""
    import keras

    from mnist_pipeline.training.model import build_core_model, compile_model

    params = training_params()
    batch = int(params["batch_size"])
    keras.utils.set_random_seed(0)
    model = compile_model(build_core_model(params["model"]), params["optimizer"], steps + 3)
    rng = np.random.default_rng(0)
    images = rng.random((batch * steps, 28, 28, 1), dtype=np.float32)
    labels = rng.integers(0, 10, batch * steps)
    model.fit(images[: batch * 3], labels[: batch * 3], batch_size=batch, verbose=0)  # trace
    began = time.perf_counter()
    model.fit(images, labels, batch_size=batch, epochs=1, verbose=0)
    return batch * steps / (time.perf_counter() - began)


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
def group_cpu_seconds(pgid: int) -> float:
    """CPU seconds (user + system) of the live processes of process group ``pgid``."""
    ticks = os.sysconf("SC_CLK_TCK")
    total = 0
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            stat = Path(entry.path, "stat").read_text()
        except OSError:
            continue
        fields = stat[stat.rindex(")") + 2 :].split()  # after "pid (comm) "
        if int(fields[2]) == pgid:  # pgrp
            total += int(fields[11]) + int(fields[12])  # utime, stime
    return total / ticks


class MlflowModelsServe:
    """``mlflow models serve --env-manager uv`` in the model's cached environment, in its own
    process group (what docs/serving.md tells users to run)."""

    name = "mlflow serve"

    def __init__(self, model_uri: str, registry_uri: str, log: Path, env: str) -> None:
        from mnist_pipeline.registry.model_env import env_root, tool_env

        self.port = free_port()
        self.url = f"http://{HOST}:{self.port}"
        self.log = log
        # "model": the model's own environment, as MLflow builds it; "project": this venv
        # (uvicorn[standard]: uvloop and httptools, as the project's server has).
        manager = "uv" if env == "model" else "local"
        variables = tool_env(
            model_env_root(model_uri, registry_uri) if env == "model" else env_root()
        )
        variables.update(MLFLOW_TRACKING_URI=registry_uri, MLFLOW_REGISTRY_URI=registry_uri)
        command = [
            sys.executable,
            "-m",
            "mlflow",
            "models",
            "serve",
            "-m",
            model_uri,
            "--env-manager",
            manager,
            "-h",
            HOST,
            "-p",
            str(self.port),
        ]
        self.command = " ".join(command[2:])
        with log.open("wb") as output:
            self.process = subprocess.Popen(
                command,
                env=variables,
                stdout=output,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                start_new_session=True,
            )

    def start(self, timeout_s: float = 300) -> MlflowModelsServe:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"mlflow models serve exited: {self.log.read_text()[-2000:]}")
            with contextlib.suppress(requests.RequestException):
                if requests.get(f"{self.url}/ping", timeout=2).status_code == 200:
                    return self
            time.sleep(0.5)
        raise RuntimeError(f"mlflow models serve not ready: {self.log.read_text()[-2000:]}")

    @property
    def predict_url(self) -> str:
        return f"{self.url}/invocations"

    @property
    def pgid(self) -> int:
        return self.process.pid

    def stop(self) -> None:
        from mnist_pipeline.processes import stop_process_group

        stop_process_group(self.process)


def model_env_root(model_uri: str, registry_uri: str) -> Path:
    """The root of the model's environments, after checking the model's one is built."""
    import mlflow

    from mnist_pipeline.registry.model_env import env_dir, env_root

    mlflow.set_registry_uri(registry_uri)
    root = env_root()
    with tempfile.TemporaryDirectory(prefix="bench-model-") as tmp:
        model_dir = Path(mlflow.artifacts.download_artifacts(model_uri, dst_path=tmp))
        target = env_dir(model_dir, root)
    if not target.is_dir():
        sys.exit(
            f"the model's own environment {target} is not built: run `make model-env` (part "
            "of `make install`), or pass --mlflow-env project"
        )
    return root


class ProjectServer:
    """The project's server (``python -m mnist_pipeline.serving``), as ``kedro serve`` runs it."""

    name = "project server"

    def __init__(self, model_uri: str, registry_uri: str, **settings: Any) -> None:
        from mnist_pipeline.serving import ServerProcess, ServerSettings

        # inter_op_threads 1: serving.inter_op_threads in conf/base/parameters_deploy.yml
        self.server = ServerProcess(
            model_uri, registry_uri, ServerSettings(port=0, inter_op_threads=1, **settings)
        )

    def start(self) -> ProjectServer:
        self.server.start()
        return self

    @property
    def predict_url(self) -> str:
        return self.server.predict_url

    @property
    def pgid(self) -> int:
        assert self.server.process is not None
        return self.server.process.pid

    def stop(self) -> None:
        self.server.stop()


# ── the load generator ───────────────────────────────────────────────────────────────────
# One POST body for every request; the summary comes back as one JSON line. wrk bounds only
# the seconds (-d): a thread that has had its share of the request bound stops and sends wrk
# SIGINT, on which wrk ends the run early and reports it (its main thread otherwise sleeps
# for all of -d). LuaJIT's ffi calls kill(2).
WRK_SCRIPT = r"""
local ffi = require("ffi")
ffi.cdef("int getpid(void); int kill(int pid, int sig);")
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
local limit, answered = 0, 0

function init(args)
  local file = assert(io.open(args[1], "rb"))
  wrk.body = file:read("*a")
  file:close()
  limit = tonumber(args[2])
end

function response(status, headers, body)
  answered = answered + 1
  if answered == limit then
    wrk.thread:stop()
    ffi.C.kill(ffi.C.getpid(), 2)
  end
end

function done(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    "WRK_RESULT {\"requests\": %d, \"duration_us\": %d, \"errors\": %d, \"status_errors\": %d,"
    .. " \"p50_us\": %d, \"p95_us\": %d, \"p99_us\": %d}\n",
    summary.requests, summary.duration, e.connect + e.read + e.write + e.timeout, e.status,
    latency:percentile(50), latency:percentile(95), latency:percentile(99)))
end
"""


def find_wrk() -> tuple[str, str]:
    """wrk's path and version, or exit with how to install it."""
    path = shutil.which("wrk")
    if path is None:
        sys.exit(
            "wrk not found: this benchmark uses it as its load generator. Install it with "
            "`apt-get install wrk` (Debian/Ubuntu; Debian 12 has 4.1.0, the version of the "
            "figures in docs/serving.md) or `brew install wrk` (macOS)"
        )
    banner = subprocess.run(
        [path, "--version"], check=False, capture_output=True, text=True, timeout=10
    )
    first = (banner.stdout or banner.stderr).splitlines()[0]  # "wrk debian/4.1.0-3+b2 [epoll] …"
    version = first.split()[1] if len(first.split()) > 1 else "?"
    return path, version


class Wrk:
    """Runs wrk (one thread) against a URL and measures it and the server it loads."""

    def __init__(self, path: str, root: Path, threads: int = 1) -> None:
        self.path = path
        self.threads = threads
        self.script = root / "post.lua"
        self.script.write_text(WRK_SCRIPT)
        self.bodies: dict[int, Path] = {}
        for batch, body in bodies().items():
            self.bodies[batch] = root / f"body-{batch}.json"
            self.bodies[batch].write_bytes(body)

    def run(
        self,
        server: Any,
        url: str,
        *,
        batch: int,
        concurrency: int,
        max_requests: int,
        max_seconds: float,
    ) -> dict[str, Any]:
        """At most ``max_requests`` POSTs (and ``max_seconds``) at ``concurrency``."""
        threads = min(self.threads, concurrency)
        per_thread = -(-max_requests // threads)
        command = [
            self.path,
            "-t",
            str(threads),
            "-c",
            str(concurrency),
            "-d",
            f"{max(1, round(max_seconds))}s",
            "--timeout",
            "30s",
            "-s",
            str(self.script),
            url,
            "--",
            str(self.bodies[batch]),
            str(per_thread),
        ]
        load = load_average()
        server_cpu = group_cpu_seconds(server.pgid)
        with tempfile.TemporaryFile() as output:
            began = time.perf_counter()
            process = subprocess.Popen(command, stdout=output, stderr=subprocess.STDOUT)
            killer = threading.Timer(max_seconds + 60, process.kill)  # a wrk that hangs
            killer.start()
            try:
                _, status, usage = os.wait4(process.pid, 0)
            finally:
                killer.cancel()
            process.returncode = os.waitstatus_to_exitcode(status)
            wall = time.perf_counter() - began
            server_cpu = group_cpu_seconds(server.pgid) - server_cpu
            output.seek(0)
            text = output.read().decode(errors="replace")
        result = next(
            (
                json.loads(line[len("WRK_RESULT ") :])
                for line in text.splitlines()
                if line.startswith("WRK_RESULT ")
            ),
            None,
        )
        if process.returncode != 0 or result is None:
            raise RuntimeError(f"wrk failed ({process.returncode}): {text[-2000:]}")
        seconds = result["duration_us"] / 1e6
        done = result["requests"]
        return {
            "server": server.name,
            "concurrency": concurrency,
            "batch": batch,
            "requests": done,
            "errors": result["errors"] + result["status_errors"],
            "seconds": round(seconds, 2),
            "requests_per_s": round(done / seconds, 1),
            "images_per_s": round(done * batch / seconds, 1),
            "p50_ms": result["p50_us"] / 1000,
            "p95_ms": result["p95_us"] / 1000,
            "p99_ms": result["p99_us"] / 1000,
            "server_cores": round(server_cpu / wall, 2),
            "wrk_cpu_s": round(usage.ru_utime + usage.ru_stime, 3),
            "wrk_share": (usage.ru_utime + usage.ru_stime) / (wall * CORES),
            "wall_s": round(wall, 2),
            "load_average": load,
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


def check_same_answers(servers: list[Any]) -> None:
    """Both servers answer the 32-image body with the same digits (same model, same body)."""
    body = bodies()[32]
    digits = []
    for server in servers:
        answer = requests.post(
            server.predict_url, data=body, headers={"Content-Type": "application/json"}, timeout=60
        )
        answer.raise_for_status()
        digits.append(np.asarray(answer.json()["predictions"]).argmax(axis=1).tolist())
    if any(d != digits[0] for d in digits):
        raise RuntimeError(f"the servers disagree on the same body: {digits}")


HEADER = (
    f"{'server':<16}{'conc':>5}{'batch':>6}{'requests':>9}{'errors':>7}{'req/s':>9}"
    f"{'images/s':>10}{'p50 ms':>9}{'p95 ms':>9}{'p99 ms':>9}{'server':>8}{'wrk':>7}  load avg"
)


def _format(row: dict[str, Any]) -> str:
    return (
        f"{row['server']:<16}{row['concurrency']:>5}{row['batch']:>6}{row['requests']:>9}"
        f"{row['errors']:>7}{row['requests_per_s']:>9.1f}{row['images_per_s']:>10.1f}"
        f"{row['p50_ms']:>9.2f}{row['p95_ms']:>9.2f}{row['p99_ms']:>9.2f}"
        f"{row['server_cores']:>7.2f}c{100 * row['wrk_share']:>6.1f}%  {row['load_average']}"
    )


# ── the parts of the run ─────────────────────────────────────────────────────────────────
def ratio_rounds(
    wrk: Wrk,
    ours: Any,
    plain: Any,
    *,
    batch: int,
    rounds: int,
    seconds: float,
    max_requests: int,
) -> dict[str, Any]:
    """Rounds alternating between the servers at concurrency 8; the median round's ratio."""
    figure = "requests_per_s" if batch == 1 else "images_per_s"
    rows: list[dict[str, Any]] = []
    for number in range(rounds):
        order = (ours, plain) if number % 2 == 0 else (plain, ours)
        for server in order:
            row = wrk.run(
                server,
                server.predict_url,
                batch=batch,
                concurrency=8,
                max_requests=max_requests,
                max_seconds=seconds,
            )
            row["round"] = number + 1
            rows.append(row)
            print(_format(row), flush=True)
    mine = [r[figure] for r in rows if r["server"] == ours.name]
    theirs = [r[figure] for r in rows if r["server"] == plain.name]
    per_round = [a / max(b, 1e-9) for a, b in zip(mine, theirs, strict=True)]
    return {
        "batch": batch,
        "figure": figure,
        "rounds": [
            {"project": a, "mlflow": b, "ratio": r}
            for a, b, r in zip(mine, theirs, per_round, strict=True)
        ],
        "ratio": statistics.median(per_round),
        "errors": sum(r["errors"] for r in rows),
        "rows": rows,
    }


def sweep(wrk: Wrk, server: Any, max_requests: int, seconds: float) -> list[dict[str, Any]]:
    rows = []
    for batch in BATCHES:
        for concurrency in CONCURRENCY:
            row = wrk.run(
                server,
                server.predict_url,
                batch=batch,
                concurrency=concurrency,
                max_requests=max_requests,
                max_seconds=seconds,
            )
            rows.append(row)
            print(_format(row), flush=True)
    return rows


def logging_cost(
    wrk: Wrk, model_uri: str, registry_uri: str, *, root: Path, max_requests: int, seconds: float
) -> list[dict[str, Any]]:
    """p50 of single images at concurrency 1 and 8, without and with the inference log.

    Both servers run at once (same model, same load generator); rounds alternate between
    them so that a busy machine slows both alike; the median of the rounds' p50s is reported.
    """
    plain = ProjectServer(model_uri, registry_uri)
    logged = ProjectServer(
        model_uri, registry_uri, inference_log={"path": str(root / "inference-log")}
    )
    plain.name, logged.name = "without log", "with log"
    rows: list[dict[str, Any]] = []
    try:
        plain.start()
        logged.start()
        for server in (plain, logged):  # warm-up
            wrk.run(
                server, server.predict_url, batch=1, concurrency=2, max_requests=200, max_seconds=2
            )
        print(HEADER)
        for concurrency in (1, 8):
            p50s: dict[str, list[float]] = {"without log": [], "with log": []}
            for _ in range(3):
                for server in (plain, logged):
                    row = wrk.run(
                        server,
                        server.predict_url,
                        batch=1,
                        concurrency=concurrency,
                        max_requests=max_requests,
                        max_seconds=seconds,
                    )
                    print(_format(row), flush=True)
                    p50s[server.name].append(row["p50_ms"])
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
        info = logged.server.info
        status = requests.get(f"{logged.server.url}/v1/models/{info['name']}", timeout=10).json()
        print(f"inference log status: {status.get('inference_log')}")
    finally:
        plain.stop()
        logged.stop()
    return rows


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model-uri", default=None, help="e.g. models:/mnist_cnn@production")
    parser.add_argument("--registry-uri", default=os.environ.get("MLFLOW_PRODUCTION_REGISTRY_URI"))
    parser.add_argument("--rounds", type=int, default=3, help="per ratio and server")
    parser.add_argument("--seconds", type=float, default=10.0, help="per load run, at most")
    parser.add_argument("--requests", type=int, default=100_000, help="per load run, at most")
    parser.add_argument(
        "--soak", type=int, default=10_000, help="requests at concurrency 16 (0: no soak)"
    )
    parser.add_argument("--sweep", action="store_true", help="also concurrency 1/8/32 × 1/32")
    parser.add_argument(
        "--mlflow-env",
        choices=("model", "project"),
        default="model",
        help="where mlflow models serve runs: the model's own environment (.mlflow-envs/, "
        "default: uvicorn as MLflow requires it) or the project's venv (uvicorn with uvloop "
        "and httptools, as the project's server has)",
    )
    parser.add_argument("--wrk-threads", type=int, default=1)
    parser.add_argument("--json", type=Path, default=None, help="also write the figures here")
    parser.add_argument(
        "--logging-only", action="store_true", help="only the inference log's cost on p50"
    )
    args = parser.parse_args()
    os.environ.setdefault("KEDRO_DISABLE_TELEMETRY", "1")
    wrk_path, wrk_version = find_wrk()

    with tempfile.TemporaryDirectory(prefix="bench-serving-") as tmp:
        root = Path(tmp)
        wrk = Wrk(wrk_path, root, args.wrk_threads)
        began, first_load = datetime.datetime.now().astimezone(), load_average()
        print(
            f"{began:%Y-%m-%d %H:%M %Z} | {CORES} cores | "
            f"load average {first_load} (1/5/15 min) | wrk {wrk_version} "
            f"({args.wrk_threads} thread{'s' if args.wrk_threads > 1 else ''})"
        )
        if not wrk_version.startswith(("4.1.0", "debian/4.1.0")):
            print(f"note: wrk {wrk_version}, not {WRK_VERSION}: figures may differ from the docs")
        if args.model_uri:
            ours_uri, ours_registry = args.model_uri, args.registry_uri
            print(f"model: {args.model_uri} from {args.registry_uri}")
        else:
            # The project server serves only the project's pyfunc: register the CNN that way.
            ours_registry, ours_uri = register_project_pyfunc(project_cnn(), root)
            print("model: the CNN of conf/base/parameters_training.yml (untrained weights)")
        if args.logging_only:
            rows = logging_cost(
                wrk,
                ours_uri,
                ours_registry,
                root=root,
                max_requests=args.requests,
                seconds=args.seconds,
            )
            if args.json:
                args.json.write_text(json.dumps({"inference_log": rows}, indent=2))
            return 0
        speed = training_images_per_s()
        print(
            f"this machine trains the CNN of parameters_training.yml at {speed:,.0f} images/s "
            f"(a fixed burst; load average {load_average()})"
        )

        ours = ProjectServer(ours_uri, ours_registry)
        plain = MlflowModelsServe(ours_uri, ours_registry, root / "mlflow.log", args.mlflow_env)
        try:
            ours.start()
            plain.start()
            check_same_answers([ours, plain])
            print(
                "project server: python -m mnist_pipeline.serving (uvicorn, 1 process; "
                "uvloop, httptools; TensorFlow inter-op 1, intra-op default)\n"
                f"mlflow serve:   {plain.command} (uvicorn, 1 worker: MLflow's default; "
                f"{'the model' if args.mlflow_env == 'model' else 'the project'}'s environment)"
            )
            for server in (ours, plain):  # warm-up: both bodies, a few seconds each
                for batch in BATCHES:
                    wrk.run(
                        server,
                        server.predict_url,
                        batch=batch,
                        concurrency=8,
                        max_requests=500,
                        max_seconds=3,
                    )
            print(f"\nserver: its CPU in cores; wrk: its CPU as a share of wall × {CORES} cores")
            print(HEADER)
            ratios = [
                ratio_rounds(
                    wrk,
                    ours,
                    plain,
                    batch=batch,
                    rounds=args.rounds,
                    seconds=args.seconds,
                    max_requests=args.requests,
                )
                for batch in BATCHES
            ]
            rows = [row for ratio in ratios for row in ratio["rows"]]
            if args.sweep:
                rows += sweep(wrk, ours, args.requests, args.seconds)
                rows += sweep(wrk, plain, args.requests, args.seconds)
            single = wrk.run(
                ours,
                ours.predict_url,
                batch=1,
                concurrency=1,
                max_requests=args.requests,
                max_seconds=args.seconds,
            )
            rows.append(single)
            print(_format(single))
            soak = None
            if args.soak > 0:
                soak = wrk.run(
                    ours,
                    ours.predict_url,
                    batch=1,
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

    goals = {
        1: ("1 image per request, requests/s", 3.0),
        32: ("32 images per request, images/s", 5.0),
    }
    print(
        f"\n{began:%Y-%m-%d %H:%M %Z}, {CORES} cores, this machine trained {speed:,.0f} images/s; "
        f"load average {first_load} at the start, {load_average()} at the end"
    )
    print("project server vs mlflow models serve at concurrency 8 (each round: the two runs):")
    for ratio in ratios:
        what, goal = goals[ratio["batch"]]
        rounds = ", ".join(
            f"{r['project']:,.0f} vs {r['mlflow']:,.0f} = {r['ratio']:.2f}×"
            for r in ratio["rounds"]
        )
        print(
            f"  {what}: {rounds} → median {ratio['ratio']:.2f}× (goal ≥ {goal:g}×), "
            f"{ratio['errors']} errors"
        )
    print(
        f"single-image p50 of the project server at concurrency 1: {single['p50_ms']:.2f} ms "
        "(goal ≤ 10 ms)"
    )
    wrk_cpu = sum(r["wrk_cpu_s"] for r in rows)
    wall = sum(r["wall_s"] for r in rows)
    print(
        f"load generator: wrk used {wrk_cpu:.1f} CPU s in {wall:.0f} s of load = "
        f"{100 * wrk_cpu / (wall * CORES):.1f} % of {CORES} cores (at most "
        f"{100 * max(r['wrk_share'] for r in rows):.1f} % in one run)"
    )
    if soak is not None:
        print(
            f"soak: {soak['requests']:,} requests at concurrency 16, {soak['errors']} errors "
            "(goal: 0 errors in ≥ 10,000 requests)"
        )
    if args.json:
        summary = {
            "training_images_per_s": speed,
            "ratios": [{k: v for k, v in r.items() if k != "rows"} for r in ratios],
            "rows": rows,
        }
        args.json.write_text(json.dumps(summary, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
