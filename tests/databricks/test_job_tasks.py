"""The bundle's jobs, task by task, in the replica of Databricks Runtime 15.4 LTS ML.

The job clusters' Python is `.dbr-venv/` (tools/databricks/replica.py, built by `make
install`, never here): Python 3.11 with the runtime's library versions, Spark 3.5.0 outside
pip, and the task's libraries installed as a cluster installs them (test_runtime_replica.py
checks that install). Every task runs its console script from there with the parameters
and the cluster environment that `resources/*.yml` give it (read, resolved, never repeated
here); only what names a Databricks service is pointed at a local stand-in:

- Spark: a standalone master and two one-core workers on 127.0.0.1, started from the
  replica's own Spark 3.5.0, executors running the replica's Python (the training task
  trains `distributed` on both);
- storage: the MNIST files served over HTTP by fake-gcs-server (the bundle's default source
  is a public GCS bucket over HTTPS), MLflow artifacts on Azurite (`wasbs://`, the sandbox)
  and fake-gcs-server (`gs://`, production: the cross-cloud copy uploads with the runtime's
  google-cloud-storage), SQLite tracking stores created by the replica's MLflow, a local
  data root (DBFS or a Unity Catalog volume on a cluster);
- the Serving Endpoints REST API: a local stub whose invocations are answered by the
  registered version itself, served by `mlflow models serve` from Model Serving's stand-in
  (a fresh venv with only the model's requirements, built by `make install`).

A 6,000/300-image slice of real MNIST and one epoch keep it short; the promotion gate is
disabled and the deploy's accuracy gate lowered (a one-epoch model on a slice is no 99 %
model).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import tarfile
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from mnist_pipeline.databricks import bundle as b
from mnist_pipeline.processes import stop_process_group
from tests.conftest import read_mnist_split
from tests.databricks import bundle_checks as checks
from tests.databricks.workspace_stub import TOKEN, FakeWorkspace, serve
from tests.idx_files import write_split
from tests.integration.spark_cluster import StandaloneCluster
from tools.cloud.emulators import AZURITE, Emulators, free_port

pytestmark = [pytest.mark.integration, pytest.mark.slow]

TRAIN, TEST = 6000, 300  # a slice of real MNIST: short, and enough for the smoke test's 5 digits


# ── the stand-ins, started once for the module ───────────────────────────────────────────
@pytest.fixture(scope="module")
def replica(project_root) -> Path:
    record = project_root / ".dbr-venv" / "replica.json"
    if not record.is_file():
        pytest.fail(".dbr-venv/ is missing: `make install` builds the replica (tests never do)")
    return project_root / ".dbr-venv"


@pytest.fixture(scope="module")
def emulators(tmp_path_factory) -> Iterator[Emulators]:
    if not AZURITE.exists():
        pytest.fail(f"{AZURITE} is missing: run `make install` (npm ci in tools/cloud)")
    started = Emulators(tmp_path_factory.mktemp("emulators")).start(timeout_s=120)
    yield started
    started.stop()


@pytest.fixture(scope="module")
def cluster(replica, tmp_path_factory) -> Iterator[StandaloneCluster]:
    record = json.loads((replica / "replica.json").read_text())
    assert "error" not in record["model_serving"], record["model_serving"]
    started = StandaloneCluster(
        tmp_path_factory.mktemp("spark"),
        workers=2,
        memory="2g",
        spark_home=Path(record["spark_home"]),
        python=replica / "bin" / "python",
    ).start()
    yield started
    started.close()


@pytest.fixture(scope="module")
def mnist_source(real_mnist_dir, emulators, tmp_path_factory) -> tuple[str, dict[str, str]]:
    """The slice's four IDX files in the `production` bucket, as an http:// URL prefix."""
    from google.auth.credentials import AnonymousCredentials
    from google.cloud import storage

    folder = tmp_path_factory.mktemp("mnist")
    sums = {
        **write_split(folder, "train", read_mnist_split(real_mnist_dir, "train", count=TRAIN)),
        **write_split(folder, "t10k", read_mnist_split(real_mnist_dir, "t10k", count=TEST)),
    }
    client = storage.Client(
        project="mnist-pipeline",
        credentials=AnonymousCredentials(),
        client_options={"api_endpoint": emulators.gcs_endpoint},
    )
    for path in folder.iterdir():
        client.bucket("production").blob(f"mnist/raw/{path.name}").upload_from_filename(path)
    return f"{emulators.gcs_endpoint}/production/mnist/raw", sums


@pytest.fixture(scope="module")
def stand_ins(emulators, cluster, mnist_source) -> tuple[Emulators, StandaloneCluster, tuple]:
    return emulators, cluster, mnist_source


# ── the job, as resources/*.yml define it ────────────────────────────────────────────────
def _conf_tarball(project_root: Path, target: Path, sums: dict[str, str]) -> Path:
    """conf/ as `kedro package` packs it (no local/), for this slice of MNIST."""
    conf = target / "conf"
    shutil.copytree(project_root / "conf", conf, ignore=shutil.ignore_patterns("local"))
    (conf / "local").mkdir()

    def edit(relative: str, change) -> None:
        path = conf / relative
        content = yaml.safe_load(path.read_text())
        change(content)
        path.write_text(yaml.safe_dump(content))

    edit("base/globals.yml", lambda c: c["mnist"].update(sha256=sums))
    # The slice's sizes go into base: an env parameters file would make Kedro replace whole
    # top-level blocks, `--params training.*` included (see docs/databricks.md).
    edit(
        "base/parameters_ingestion.yml",
        lambda c: (
            c["ingestion"]["train"].update(num_images=TRAIN),
            c["ingestion"]["test"].update(num_images=TEST),
        ),
    )
    edit(
        "base/parameters_preprocessing.yml",
        lambda c: c["preprocessing"].update(validation_size=0.1),
    )
    # The production gates, lowered for a one-epoch model on a slice on a shared machine.
    edit(
        "gcp/parameters_deploy.yml",
        lambda c: c["deploy_validation"].update(
            num_images=TEST, min_accuracy=0.5, latency_requests=20, max_latency_p50_ms=None
        ),
    )
    tarball = target / "dist" / "conf-mnist_pipeline.tar.gz"
    tarball.parent.mkdir(parents=True)
    with tarfile.open(tarball, "w:gz") as tar:
        tar.add(conf, arcname="conf")
    shutil.rmtree(conf)
    return tarball


def _job(project_root: Path, target: str, name: str, overrides: dict, workspace: dict) -> dict:
    return checks.resolve(checks.load(project_root), target, overrides, workspace)["jobs"][name]


def _command(replica: Path, task: dict, job: dict) -> list[str]:
    """The task's console script in the replica, with the task's parameters (job
    parameters filled in with their defaults)."""
    defaults = {p["name"]: str(p["default"]) for p in job.get("parameters", [])}
    wheel_task = task["python_wheel_task"]

    def fill(argument: str) -> str:
        for name, value in defaults.items():
            argument = argument.replace(f"{{{{job.parameters.{name}}}}}", value)
        return argument

    arguments = [fill(argument) for argument in wheel_task["parameters"]]
    return [str(replica / "bin" / wheel_task["entry_point"]), *arguments]


def _cluster_env(job: dict, task: dict) -> dict[str, str]:
    (cluster,) = [c for c in job["job_clusters"] if c["job_cluster_key"] == task["job_cluster_key"]]
    return dict(cluster["new_cluster"]["spark_env_vars"])


def _base_env() -> dict[str, str]:
    """This machine's environment without the test venv's Python, MLflow or project settings."""
    dropped = ("MLFLOW_", "MNIST_", "PYTHONPATH", "VIRTUAL_ENV", "PYSPARK_", "SPARK_")
    return {k: v for k, v in os.environ.items() if not k.startswith(dropped)}


def _in_group(command: list[str], cwd: Path, env: dict[str, str]) -> tuple[int, str, str]:
    """Run ``command`` in its own process group, which is stopped however it ends: a task's
    Spark driver JVM never outlives a failed or timed-out run."""
    process = subprocess.Popen(
        command, cwd=cwd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        start_new_session=True,
    )  # fmt: skip
    try:
        stdout, stderr = process.communicate(timeout=600)
    finally:
        stop_process_group(process)
    return process.returncode, stdout, stderr


def _run(command: list[str], cwd: Path, env: dict[str, str], key: str) -> float:
    started = time.perf_counter()
    returncode, stdout, stderr = _in_group(command, cwd, env)
    log = cwd / "logs" / f"{key}.log"
    log.parent.mkdir(exist_ok=True)
    log.write_text(stdout + stderr)
    errors = [line for line in log.read_text().splitlines() if "Error" in line or "error:" in line]
    assert returncode == 0, f"task {key} failed ({log}):\n" + "\n".join(errors[-15:])
    return time.perf_counter() - started


# ── the serving-endpoints stub ───────────────────────────────────────────────────────────
@pytest.fixture
def workspace_api() -> Iterator[tuple[FakeWorkspace, str]]:
    """The Databricks workspace's REST API as databricks-sdk calls it (tests/databricks/
    workspace_stub.py); its endpoint's invocations go to ``backend`` once it serves."""
    state = FakeWorkspace()
    state.backend = None

    def answer(body: dict) -> list:
        if not state.backend:
            raise AssertionError("the endpoint was queried before it served a version")
        request = urllib.request.Request(
            state.backend,
            data=json.dumps(body).encode(),
            headers={"Content-Type": "application/json"},
        )
        with urllib.request.urlopen(request, timeout=60) as response:
            return json.loads(response.read())["predictions"]

    state.answer = answer
    with serve(state) as (workspace, host):
        yield workspace, host


def _serve_version(replica: Path, serving: dict, version: str, env: dict, log: Path):
    """The registered version as Model Serving serves it: its files fetched from the registry
    (here with the replica's MLflow), then `mlflow models serve` from Model Serving's stand-in,
    a fresh venv with only the model's requirements (built by `make install`)."""
    registry, model = env["MLFLOW_PRODUCTION_REGISTRY_URI"], env["MLFLOW_PRODUCTION_MODEL_NAME"]
    env = {**env, "MLFLOW_TRACKING_URI": registry, "MLFLOW_REGISTRY_URI": registry}
    files = log.parent / f"served-model-{version}"
    fetch = (
        "import sys, mlflow; mlflow.artifacts.download_artifacts(sys.argv[1], dst_path=sys.argv[2])"
    )
    subprocess.run(
        [str(replica / "bin" / "python"), "-c", fetch, f"models:/{model}/{version}", str(files)],
        env=env, check=True, capture_output=True, timeout=300,
    )  # fmt: skip
    bin_dir = Path(serving["python"]).parent
    env["PATH"] = f"{bin_dir}{os.pathsep}{env.get('PATH', '')}"
    port = free_port()
    command = [str(bin_dir / "mlflow"), "models", "serve", "-m", str(files)]
    command += ["--env-manager", "local", "-h", "127.0.0.1", "-p", str(port)]
    with log.open("wb") as out:
        process = subprocess.Popen(
            command, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True
        )
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise AssertionError(f"mlflow models serve exited: {log.read_text()[-3000:]}")
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/ping", timeout=2):
                return process, f"http://127.0.0.1:{port}/invocations"
        except OSError:
            time.sleep(0.5)
    stop_process_group(process, timeout_s=30)
    raise AssertionError(f"mlflow models serve did not answer in 300 s: {log.read_text()[-3000:]}")


def _logged_requirements(emulators: Emulators, prefix: str) -> dict[str, str]:
    """The pins of the model copied into production (its requirements.txt on gs://)."""
    from google.auth.credentials import AnonymousCredentials
    from google.cloud import storage

    client = storage.Client(
        project="mnist-pipeline",
        credentials=AnonymousCredentials(),
        client_options={"api_endpoint": emulators.gcs_endpoint},
    )
    blobs = [
        blob
        for blob in client.list_blobs("mlflow-production", prefix=prefix)
        if blob.name.endswith("/requirements.txt")
    ]
    assert blobs, f"no requirements.txt under gs://mlflow-production/{prefix}"
    lines = blobs[0].download_as_text().splitlines()
    return dict(line.split("==", 1) for line in lines if "==" in line)


# ── the test ─────────────────────────────────────────────────────────────────────────────
def test_the_jobs_tasks_run_in_the_runtime_replica(
    project_root, replica, stand_ins, workspace_api, tmp_path
):
    emulators, cluster, (source, sums) = stand_ins
    record = json.loads((replica / "replica.json").read_text())
    files = tmp_path / "files"  # ${workspace.file_path}: where the bundle syncs to
    _conf_tarball(project_root, files, sums)
    data = tmp_path / "data"  # DBFS or a Unity Catalog volume on a cluster
    stores = tmp_path / "mlflow"
    stores.mkdir()
    production = f"sqlite:///{stores / 'production.db'}"  # created by the replica's MLflow
    unique = tmp_path.name
    overrides = {
        "use_gpu": "false",  # no GPU here; the GPU settings are checked in test_bundle.py
        "num_slots": "2",
        "training_mode": "distributed",
        "epochs": "1",
        "batch_size": "64",
        "data_root": str(data),
        "mnist_source": source,
        "production_registry": production,  # the deploy task's --registry-uri
    }
    # The Databricks services, stood in for (the cluster's own variables stay as resolved).
    services = {
        "SPARK_MASTER": cluster.master_url,
        "SPARK_EXECUTOR_MEMORY": "1g",  # each worker offers 2g (the JVM's; Python's is apart)
        "MLFLOW_SANDBOX_TRACKING_URI": f"sqlite:///{stores / 'sandbox.db'}",
        "MLFLOW_SANDBOX_REGISTRY_URI": f"sqlite:///{stores / 'sandbox.db'}",
        "MLFLOW_SANDBOX_EXPERIMENT": "mnist_pipeline",
        "MLFLOW_SANDBOX_ARTIFACT_LOCATION": emulators.wasbs("mlflow-sandbox", unique),
        "MLFLOW_PRODUCTION_TRACKING_URI": production,
        "MLFLOW_PRODUCTION_REGISTRY_URI": production,
        "MLFLOW_PRODUCTION_EXPERIMENT": "mnist_pipeline_production",
        "MLFLOW_PRODUCTION_ARTIFACT_LOCATION": f"gs://mlflow-production/{unique}",
        "MNIST_GATE_MODE": "disabled",  # a 1-epoch model on a slice is no 99 % model
        **emulators.sandbox_server_env(),  # the clusters' own access to their storage
        **emulators.production_server_env(),
    }
    timings = {}

    sandbox = _job(project_root, b.SANDBOX_ENV, b.SANDBOX_JOB, overrides, {"file_path": str(files)})
    for task in sandbox["tasks"]:
        env = _base_env() | _cluster_env(sandbox, task) | services
        key = task["task_key"]
        timings[key] = _run(_command(replica, task, sandbox), tmp_path, env, key)

    summary = json.loads((data / "08_reporting" / "training_summary.json").read_text())
    assert summary["mode"] == "distributed" and summary["num_workers"] == 2
    # Both executors of the runtime's Spark took part: each one's Python ran a worker.
    assert len(list((cluster.folder / "work").glob("app-*/*/stderr"))) >= 2

    state, host = workspace_api
    workspace = {"file_path": str(files), "host": host}  # ${workspace.host}: the stub
    deploy = _job(project_root, b.PRODUCTION_ENV, b.DEPLOY_JOB, overrides, workspace)
    serving = None
    try:
        for task in deploy["tasks"]:
            env = _base_env() | _cluster_env(deploy, task) | services
            env |= {  # the job's run-as identity (databricks-sdk's auth chain), stood in by a token
                "DATABRICKS_TOKEN": TOKEN,
                "MNIST_SERVING_PORT": str(free_port()),
            }
            key = task["task_key"]
            command = _command(replica, task, deploy)
            if key == "smoke_test":  # the endpoint now serves the version update_endpoint set
                (served,) = state.served_versions(next(iter(state.endpoints)))
                serving, state.backend = _serve_version(
                    replica, record["model_serving"], served, env, tmp_path / "serve.log"
                )
            timings[key] = _run(command, tmp_path, env, key)
    finally:
        if serving is not None:
            stop_process_group(serving, timeout_s=30)

    # The logged model names the TensorFlow the runtime has (`tensorflow`, not -cpu).
    requirements = _logged_requirements(emulators, f"{unique}/")
    assert requirements["tensorflow"] == record["after"]["tensorflow"] == "2.16.1"
    assert "tensorflow-cpu" not in requirements
    # ...which are what Model Serving's stand-in was built from.
    assert [f"{n}=={v}" for n, v in requirements.items()] == record["model_serving"]["requirements"]
    report = json.loads((data / "08_reporting" / "deployment_report.json").read_text())
    assert report["deployable"] is True, report.get("failures")
    assert "fresh_env" not in report or not report["fresh_env"].get("loaded")
    # The job created the missing endpoint on the version @production resolves to, which
    # answered the smoke test; `bundle deploy` declares no endpoint (test_bundle.py).
    endpoint = next(iter(state.endpoints))
    assert state.served_versions(endpoint) == ["1"]
    assert len(state.calls("POST", "/api/2.0/serving-endpoints")) == 1
    assert state.calls("POST", f"/serving-endpoints/{endpoint}/invocations")
    print("task times (s):", {k: round(v, 1) for k, v in timings.items()})


# A `custom`-mode training run (the project's own MultiWorkerMirroredStrategy over Spark
# barrier tasks) in the replica's Python: the runtime's TensorFlow and Keras, the runtime's
# Spark, two executors of the cluster above; the same keras_compat code path as distributed.
CUSTOM_TRAINING = """
import json, sys
import keras, tensorflow as tf
from mnist_pipeline.hooks import create_spark_session, spark_settings
from mnist_pipeline.training import run_training

args = json.loads(sys.argv[1])
spark = create_spark_session(spark_settings({
    "spark.master": args["master"], "spark.app.name": "replica-custom",
    "spark.driver.host": "127.0.0.1", "spark.driver.bindAddress": "127.0.0.1",
    "spark.python.worker.reuse": False, "spark.ui.enabled": False,
    "spark.executor.memory": "1g",
}))
result = run_training(train_path=args["train"], validation_path=args["validation"],
                      fingerprint="replica-custom", config=args["config"])
spark.stop()
print("RESULT " + json.dumps({"num_workers": result.num_workers, "model_path": result.model_path,
                              "tensorflow": tf.__version__, "keras": keras.__version__}))
"""


def test_custom_mode_trains_with_the_runtimes_tensorflow(
    replica, cluster, real_mnist_dir, tmp_path
):
    from mnist_pipeline.datasets.image_shards import write_image_shards
    from tests.training.conftest import TRAIN_IMAGES, VALIDATION_IMAGES, _read, small_config

    def tf_version() -> str:
        from importlib.metadata import version

        return version("tensorflow-cpu")

    paths = {}
    slices = {"train": (0, TRAIN_IMAGES), "validation": (TRAIN_IMAGES, VALIDATION_IMAGES)}
    for name, (start, count) in slices.items():
        images, labels = _read(real_mnist_dir, "train", start, count)
        paths[name] = str(tmp_path / "model_input" / name)
        write_image_shards(paths[name], (images / 255.0)[..., None], labels, num_shards=4)
    config = small_config(tmp_path, "custom", epochs=1, distribution={"communication": "ring"})
    config["distribution"]["slot_wait_s"] = 60
    arguments = {"master": cluster.master_url, **paths, "config": config}
    command = [str(replica / "bin" / "python"), "-c", CUSTOM_TRAINING, json.dumps(arguments)]
    returncode, stdout, stderr = _in_group(command, tmp_path, _base_env())
    lines = [line for line in stdout.splitlines() if line.startswith("RESULT ")]
    assert returncode == 0 and lines, (stdout + stderr)[-4000:]
    outcome = json.loads(lines[-1].removeprefix("RESULT "))
    installed = json.loads((replica / "replica.json").read_text())["after"]
    assert outcome["num_workers"] == 2
    assert Path(outcome["model_path"]).is_file()
    # The runtime's TensorFlow (2.16.1), not this machine's; Keras as the allow-list moves it.
    assert outcome["tensorflow"] == installed["tensorflow"] != tf_version()
    assert outcome["keras"] == installed["keras"]
