"""The whole lifecycle across two "clouds" on this machine: sandbox on Azure Blob storage
(Azurite), production on Google Cloud Storage (fake-gcs-server).

``make run-cloud`` runs ``python -m tools.cloud.run_cloud``:

1. starts both emulators (or uses those of ``make cloud-up``), with containers and buckets;
2. uploads the MNIST files to ``abfs://sandbox/mnist/raw`` as a user would;
3. starts the sandbox ``mlflow server`` (artifacts proxied to ``wasbs://mlflow-sandbox@…``)
   and the production one (artifacts proxied to ``gs://mlflow-production/…``): only these
   two processes get the artifact stores' keys;
4. ``kedro run --env azure``: MNIST from abfs://, model input, checkpoints and the chief's
   model on abfs:// (``MNIST_STORAGE_ROOT``), tracked in the sandbox server, promoted into
   the production server (the copy is verified there);
5. ``kedro run --env gcp --pipelines deploy`` and ``kedro serve --env gcp``, loading the
   model through the production server; one prediction over HTTP;
6. checks that the model's files are in the Azure container and in the GCS bucket, then
   stops what it started.

Training runs as ``training.mode`` says (``single_node`` by default; ``TRAINING_MODE`` and
``SPARK_MASTER``, e.g. ``local[2]``, choose others). Emulator-only script: it hands
Azurite's development key to the processes that need it.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

from tools.cloud.emulators import ACCOUNT, ROOT, Emulators, free_port

MNIST_FILES = (
    "train-images-idx3-ubyte.gz",
    "train-labels-idx1-ubyte.gz",
    "t10k-images-idx3-ubyte.gz",
    "t10k-labels-idx1-ubyte.gz",
)
SANDBOX_ARTIFACTS = f"wasbs://mlflow-sandbox@{ACCOUNT}.blob.core.windows.net/artifacts"
PRODUCTION_ARTIFACTS = "gs://mlflow-production/artifacts"
#: Variables that would let a pipeline process write an MLflow artifact store directly.
ARTIFACT_STORE_KEYS = (
    "AZURE_STORAGE_CONNECTION_STRING",
    "AZURE_STORAGE_ACCESS_KEY",
    "AZURE_STORAGE_SAS_TOKEN",
    "GOOGLE_APPLICATION_CREDENTIALS",
    "STORAGE_EMULATOR_HOST",
)
BIN = Path(sys.executable).parent


def log(message: str) -> None:
    print(f"[run-cloud] {message}", flush=True)


def _wait_http(url: str, process: subprocess.Popen, what: str, timeout_s: float = 600) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"{what} exited with {process.returncode}")
        try:
            with urllib.request.urlopen(url, timeout=2):
                return
        except OSError:
            time.sleep(0.5)
    raise RuntimeError(f"{what} did not answer {url} in {timeout_s:g} s")


def _spawn_mlflow_server(
    name: str, folder: Path, destination: str, keys: dict[str, str]
) -> tuple[subprocess.Popen, str]:
    """An ``mlflow server`` proxying its artifacts to ``destination`` (it alone gets ``keys``)."""
    port = free_port()
    (folder / name).mkdir(parents=True, exist_ok=True)
    log_file = open(folder / f"mlflow-{name}.log", "wb")  # noqa: SIM115 - closed below
    env = {k: v for k, v in os.environ.items() if k not in ARTIFACT_STORE_KEYS}
    env.update(keys, PATH=f"{BIN}{os.pathsep}{env.get('PATH', '')}")
    # No background job runner (MLflow's GenAI jobs): it forks four more Python processes
    # that import mlflow, and tracking + registry never need it.
    env["MLFLOW_SERVER_ENABLE_JOB_EXECUTION"] = "false"
    process = subprocess.Popen(
        [
            str(BIN / "mlflow"), "server", "--host", "127.0.0.1", "--port", str(port),
            "--backend-store-uri", f"sqlite:///{folder / name / 'mlflow.db'}",
            "--artifacts-destination", destination, "--workers", "1",
        ],
        stdout=log_file, stderr=subprocess.STDOUT, start_new_session=True, env=env,
    )  # fmt: skip
    log_file.close()
    return process, f"http://127.0.0.1:{port}"


def start_mlflow_servers(
    servers: dict[str, tuple[str, dict[str, str]]], folder: Path, stack: contextlib.ExitStack
) -> dict[str, str]:
    """Start one ``mlflow server`` per ``name: (artifact destination, keys)``, all at once
    (each creates its store on start: the two starts overlap), stopped when ``stack``
    closes; return their URLs once every one answers."""
    from mnist_pipeline.processes import stop_process_group

    started = {}
    for name, (destination, keys) in servers.items():
        process, url = _spawn_mlflow_server(name, folder, destination, keys)
        stack.callback(stop_process_group, process)
        started[name] = process, url
    for name, (process, url) in started.items():
        _wait_http(f"{url}/health", process, f"the {name} mlflow server")
    return {name: url for name, (_, url) in started.items()}


def pipeline_env(emulators: Emulators, sandbox_url: str, production_url: str) -> dict[str, str]:
    """The environment of every kedro command: data-path options, server URLs, no store key."""
    env = {k: v for k, v in os.environ.items() if k not in ARTIFACT_STORE_KEYS}
    env.update(emulators.data_env())
    env.update(
        KEDRO_DISABLE_TELEMETRY="1",
        DO_NOT_TRACK="1",
        SPARK_LOCAL_IP="127.0.0.1",
        PATH=f"{BIN}{os.pathsep}{env.get('PATH', '')}",
        MNIST_SOURCE="abfs://sandbox/mnist/raw",
        MNIST_CACHE_DIR="",  # read from abfs:// every time, no local copy
        MNIST_STORAGE_ROOT="abfs://sandbox/mnist-pipeline",
        MLFLOW_SANDBOX_TRACKING_URI=sandbox_url,
        MLFLOW_SANDBOX_ARTIFACT_LOCATION="mlflow-artifacts:/mnist_pipeline",
        MLFLOW_PRODUCTION_TRACKING_URI=production_url,
        MLFLOW_PRODUCTION_ARTIFACT_LOCATION="mlflow-artifacts:/mnist_pipeline",
    )
    return env


def kedro(args: list[str], env: dict[str, str], cwd: Path) -> None:
    log("$ kedro " + " ".join(args))
    started = time.perf_counter()
    subprocess.run([str(BIN / "kedro"), *args], env=env, cwd=cwd, check=True)
    log(f"kedro {args[0]} {' '.join(args[1:4])} done in {time.perf_counter() - started:.1f} s")


def upload_mnist(source: Path, emulators: Emulators) -> None:
    import fsspec

    fs = fsspec.filesystem("abfs", connection_string=emulators.azure_connection_string)
    for name in MNIST_FILES:
        fs.put_file(str(source / name), f"sandbox/mnist/raw/{name}")
    log(f"uploaded the MNIST files from {source} to abfs://sandbox/mnist/raw")


def first_test_digit(mnist: Path) -> tuple[list, int]:
    """The first MNIST test image (28 × 28 × 1 nested lists, 0–255) and its label."""
    from mnist_pipeline.datasets.idx import parse_idx

    images = parse_idx((mnist / MNIST_FILES[2]).read_bytes(), MNIST_FILES[2])
    labels = parse_idx((mnist / MNIST_FILES[3]).read_bytes(), MNIST_FILES[3])
    return images[0][..., None].astype(float).tolist(), int(labels[0])


def serve_once(env: dict[str, str], cwd: Path, folder: Path, image: list) -> dict:
    """``kedro serve --env gcp`` on a free port; one real test digit; stopped after."""
    from mnist_pipeline.processes import stop_process_group

    port = free_port()

    log_file = open(folder / "serve.log", "wb")  # noqa: SIM115 - closed below
    process = subprocess.Popen(
        [str(BIN / "kedro"), "serve", "--env", "gcp", "--port", str(port)],
        env=env, cwd=cwd, stdout=log_file, stderr=subprocess.STDOUT,
        start_new_session=True,
    )  # fmt: skip
    log_file.close()
    try:
        url = f"http://127.0.0.1:{port}/v1/models/mnist_cnn"
        _wait_http(url, process, "kedro serve --env gcp", timeout_s=300)
        body = json.dumps({"instances": [image]}).encode()
        request = urllib.request.Request(
            f"{url}:predict", body, {"Content-Type": "application/json"}
        )
        with urllib.request.urlopen(request, timeout=60) as response:
            answer = json.load(response)
        digit = max(range(10), key=lambda d: answer["predictions"][0][d])
        log(f"kedro serve --env gcp answered: digit {digit}")
        return answer
    finally:
        stop_process_group(process)


def list_stores(emulators: Emulators) -> dict[str, list[str]]:
    """Object names under each MLflow artifact store (checks where the model really is)."""
    from azure.storage.blob import BlobServiceClient
    from google.auth.credentials import AnonymousCredentials
    from google.cloud import storage

    blobs = BlobServiceClient.from_connection_string(emulators.azure_connection_string)
    azure = [b.name for b in blobs.get_container_client("mlflow-sandbox").list_blobs()]
    client = storage.Client(
        project="mnist-pipeline",
        credentials=AnonymousCredentials(),
        client_options={"api_endpoint": emulators.gcs_endpoint},
    )
    gcs = [b.name for b in client.list_blobs("mlflow-production")]
    data = [b.name for b in blobs.get_container_client("sandbox").list_blobs("mnist-pipeline/")]
    return {"sandbox_artifacts": azure, "production_artifacts": gcs, "sandbox_data": data}


def _run_local(args, folder: Path, project: Path, extra: list[str], stack) -> int:
    """The baseline: MNIST copied to a local folder, data path and artifact stores on disk."""
    import shutil

    timings: dict[str, float] = {}
    started = time.perf_counter()
    source = folder / "mnist"
    source.mkdir()
    for name in MNIST_FILES:
        shutil.copyfile(Path(args.mnist) / name, source / name)
    timings["upload_mnist"] = round(time.perf_counter() - started, 2)
    started = time.perf_counter()
    urls = start_mlflow_servers(
        {
            "sandbox": (str(folder / "sandbox-art"), {}),
            "production": (str(folder / "production-art"), {}),
        },
        folder,
        stack,
    )
    sandbox_url, production_url = urls["sandbox"], urls["production"]
    timings["mlflow_servers"] = round(time.perf_counter() - started, 2)
    env = {k: v for k, v in os.environ.items() if k not in ARTIFACT_STORE_KEYS}
    env.update(
        KEDRO_DISABLE_TELEMETRY="1",
        DO_NOT_TRACK="1",
        SPARK_LOCAL_IP="127.0.0.1",
        PATH=f"{BIN}{os.pathsep}{env.get('PATH', '')}",
        MNIST_SOURCE=str(source),
        MNIST_CACHE_DIR="",
        MLFLOW_SANDBOX_TRACKING_URI=sandbox_url,
        MLFLOW_SANDBOX_ARTIFACT_LOCATION="mlflow-artifacts:/mnist_pipeline",
        MLFLOW_PRODUCTION_TRACKING_URI=production_url,
        MLFLOW_PRODUCTION_ARTIFACT_LOCATION="mlflow-artifacts:/mnist_pipeline",
    )
    env.pop("MNIST_STORAGE_ROOT", None)
    for stage, command in (
        ("sandbox_run", ["run", "--env", "azure", *extra]),
        ("deploy", ["run", "--env", "gcp", "--pipelines", "deploy", *extra]),
    ):
        started = time.perf_counter()
        kedro(command, env, project)
        timings[stage] = round(time.perf_counter() - started, 2)
    started = time.perf_counter()
    serve_once(env, project, folder, first_test_digit(Path(args.mnist))[0])
    timings["serve"] = round(time.perf_counter() - started, 2)
    if args.report:
        Path(args.report).write_text(json.dumps({"timings_s": timings}, indent=2))
    log(f"stage times (s): {json.dumps(timings)}")
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tools.cloud.run_cloud", description=__doc__)
    parser.add_argument("--dir", default=os.environ.get("CLOUD_DIR", ".cloud"))
    parser.add_argument(
        "--mnist",
        default=os.environ.get("MNIST_UPLOAD_FROM")
        or os.environ.get("MNIST_TEST_DATA")
        or str(ROOT.parent / "shared" / "data" / "mnist"),
        help="local folder with the four MNIST .gz files to upload (MNIST_UPLOAD_FROM)",
    )
    parser.add_argument("--project", default=str(ROOT), help="the Kedro project to run")
    parser.add_argument(
        "--kedro-args", default="", help="extra arguments for every kedro run, e.g. --params"
    )
    parser.add_argument("--report", help="write what was checked to this JSON file")
    parser.add_argument(
        "--local",
        action="store_true",
        help="the same lifecycle on local disk (no emulator): the benchmark's baseline",
    )
    args = parser.parse_args(argv)
    # A SIGTERM (make's, a CI runner's, kill) unwinds like Ctrl-C, so the servers and
    # emulators this run started (each in its own session) are stopped, not orphaned.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(128 + signal.SIGTERM))
    folder = Path(args.dir).resolve() / f"run-{time.strftime('%Y%m%d-%H%M%S')}"
    folder.mkdir(parents=True, exist_ok=True)
    project = Path(args.project).resolve()
    extra = args.kedro_args.split()
    timings: dict[str, float] = {}

    def timed(stage: str, started: float) -> None:
        timings[stage] = round(time.perf_counter() - started, 2)

    state = Path(args.dir) / "emulators.json"
    owned = None
    with contextlib.ExitStack() as stack:
        if args.local:
            return _run_local(args, folder, project, extra, stack)
        started = time.perf_counter()
        if state.exists():
            ports = json.loads(state.read_text())
            emulators = Emulators(folder / "emulators", ports["azurite_port"], ports["gcs_port"])
            emulators.create_stores()
            log(f"using the emulators of `make cloud-up` ({state})")
        else:
            owned = Emulators(folder / "emulators")
            stack.callback(owned.stop)  # before start(): a SIGTERM while they start stops them
            emulators = owned.start(timeout_s=120)
            log("started Azurite and fake-gcs-server (stopped at the end)")
        timed("emulators", started)
        started = time.perf_counter()
        upload_mnist(Path(args.mnist), emulators)
        timed("upload_mnist", started)
        started = time.perf_counter()
        urls = start_mlflow_servers(
            {
                "sandbox": (SANDBOX_ARTIFACTS, emulators.sandbox_server_env()),
                "production": (PRODUCTION_ARTIFACTS, emulators.production_server_env()),
            },
            folder,
            stack,
        )
        sandbox_url, production_url = urls["sandbox"], urls["production"]
        log(f"sandbox MLflow {sandbox_url} → {SANDBOX_ARTIFACTS}")
        log(f"production MLflow {production_url} → {PRODUCTION_ARTIFACTS}")
        timed("mlflow_servers", started)
        env = pipeline_env(emulators, sandbox_url, production_url)
        started = time.perf_counter()
        kedro(["run", "--env", "azure", *extra], env, project)
        timed("sandbox_run", started)
        started = time.perf_counter()
        kedro(["run", "--env", "gcp", "--pipelines", "deploy", *extra], env, project)
        timed("deploy", started)
        started = time.perf_counter()
        image, label = first_test_digit(Path(args.mnist))
        answer = serve_once(env, project, folder, image)
        timed("serve", started)
        stores = list_stores(emulators)
        sandbox_files, production_files = (
            stores["sandbox_artifacts"],
            stores["production_artifacts"],
        )
        checks = {
            "model in the Azure artifact store": any("MLmodel" in n for n in sandbox_files),
            "model in the GCS artifact store": any("MLmodel" in n for n in production_files),
            "model input on abfs": any("_manifest.json" in n for n in stores["sandbox_data"]),
            f"the served model reads the first test digit ({label})": len(answer["predictions"][0])
            == 10
            and max(range(10), key=lambda d: answer["predictions"][0][d]) == label,
        }
        for what, ok in checks.items():
            log(f"{'ok ' if ok else 'FAILED'} {what}")
        checks["no artifact-store key in the pipeline's environment"] = not [
            key for key in ARTIFACT_STORE_KEYS if key in env
        ]
        report = {"timings_s": timings, "checks": checks,
                  "stores": {k: len(v) for k, v in stores.items()}}  # fmt: skip
        if args.report:
            Path(args.report).write_text(json.dumps(report, indent=2))
        log(f"stage times (s): {json.dumps(timings)}")
        return 0 if all(checks.values()) else 1


if __name__ == "__main__":
    with contextlib.suppress(KeyboardInterrupt):
        sys.exit(main())
