"""The registered model serves anywhere MLflow serves: its own environment, MLflow's four bodies.

Real processes on 127.0.0.1:

* ``mlflow models serve`` with its **default** environment manager (virtualenv): MLflow
  builds — here: finds, cached by ``make model-env`` — an environment from the model's own
  requirements, without this project, and serves ``models:/mnist_cnn@production`` there;
* the project's own server (the one ``kedro serve`` runs);
* the deploy check on a model pickled against project code (the format of earlier versions).

The registered model is logged by the project's own logging function
(:func:`mnist_pipeline.registry.model.log_classifier`) into a real SQLite store.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import mlflow
import numpy as np
import pytest
import requests

from mnist_pipeline.client.http import REQUEST_FORMATS, request_body
from mnist_pipeline.pipelines.deploy.nodes import (
    DeploymentRejectedError,
    approve_deployment,
    summarise_deployment,
    validate_production_model,
)
from mnist_pipeline.processes import stop_process_group
from mnist_pipeline.registry import model_env
from mnist_pipeline.registry.model import (
    CONTRACT_FILE,
    KERAS_ARTIFACT,
    KERAS_FILENAME,
    as_signature_input,
    pip_requirements,
    signature,
)
from mnist_pipeline.registry.store import download_model, uris
from mnist_pipeline.serving.model import load_keras_model
from tests.integration.mlflow_servers import free_port
from tests.serving.registered_model import RegisteredModel

pytestmark = [pytest.mark.integration, pytest.mark.slow]

PROJECT_ROOT = Path(__file__).resolve().parents[2]
ENV_ROOT = model_env.env_root(os.environ.get("MLFLOW_ENV_ROOT") or PROJECT_ROOT / ".mlflow-envs")
READY_TIMEOUT_S = 600
IMAGES = 8


def _tool_env() -> dict[str, str]:
    """MLFLOW_ENV_ROOT, this venv's bin/ and pyenv (MLflow's virtualenv manager needs it)."""
    env = model_env.tool_env(ENV_ROOT)
    pyenv_bin = Path(os.environ.get("PYENV_ROOT", Path.home() / ".pyenv")) / "bin"
    if shutil.which("pyenv", path=env["PATH"]) is None and (pyenv_bin / "pyenv").exists():
        env["PATH"] = os.pathsep.join([env["PATH"], str(pyenv_bin)])
    if shutil.which("pyenv", path=env["PATH"]) is None:
        pytest.fail("pyenv is not on PATH: `mlflow models serve`'s default manager needs it")
    return env


@pytest.fixture(scope="module")
def model_dir(registered: RegisteredModel, tmp_path_factory) -> Path:
    """The registered model's files, downloaded; fails if its environment was never built."""
    folder = download_model(
        registered.model_uri, tmp_path_factory.mktemp("model"), registered.registry_uri
    )
    target = model_env.env_dir(folder, ENV_ROOT)
    if not target.exists():
        pytest.fail(
            f"the model's environment {target} is missing: run `make model-env` (the install "
            "step builds it; tests never download packages)"
        )
    return folder


@pytest.fixture(scope="module")
def mlflow_serve(registered: RegisteredModel, model_dir: Path, tmp_path_factory) -> Iterator[str]:
    """``mlflow models serve`` of ``models:/mnist_cnn@production``, default env manager."""
    port = free_port()
    store = registered.registry_uri
    env = {**_tool_env(), "MLFLOW_TRACKING_URI": store, "MLFLOW_REGISTRY_URI": store}
    # INFO, whatever an earlier Kedro session in this process set (runtime_env makes it
    # WARNING): the "already exists" line below is MLflow's INFO record of a reused env.
    env["MLFLOW_LOGGING_LEVEL"] = "INFO"
    log_path = tmp_path_factory.mktemp("mlflow-serve") / "serve.log"
    command = [sys.executable, "-m", "mlflow", "models", "serve", "-m", registered.model_uri]
    command += ["-h", "127.0.0.1", "-p", str(port)]  # no --env-manager: the default
    with log_path.open("wb") as log:
        process = subprocess.Popen(
            command, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
        )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + READY_TIMEOUT_S
        while True:  # readiness handshake: /ping answers once the model is loaded
            if process.poll() is not None:
                pytest.fail(f"mlflow models serve exited: {log_path.read_text()[-3000:]}")
            try:
                if requests.get(f"{url}/ping", timeout=5).status_code == 200:
                    break
            except requests.ConnectionError:
                pass
            if time.monotonic() > deadline:
                pytest.fail(f"mlflow models serve not ready: {log_path.read_text()[-3000:]}")
            time.sleep(0.5)
        log_text = log_path.read_text()
        assert "already exists" in log_text, "the cached environment was not reused"
        yield url
    finally:
        stop_process_group(process)


def _bodies(images: np.ndarray) -> dict[str, dict]:
    flat = images.reshape(len(images), -1).tolist()
    return {
        "instances": {"instances": images.tolist()},
        "inputs": {"inputs": images.tolist()},
        "dataframe_split": {"dataframe_split": {"columns": ["image"], "data": [[f] for f in flat]}},
        "dataframe_records": {"dataframe_records": [{"image": f} for f in flat]},
    }


def test_four_formats_answer_the_same_in_mlflow_serving_and_the_project_server(
    mlflow_serve,
    model_server,
    registered,
) -> None:
    images = registered.test_images[:IMAGES]
    keras_model = load_keras_model(registered.model_uri, registered.registry_uri)
    offline = keras_model.predict(images[..., None].astype(np.float32), verbose=0)
    for name, body in _bodies(images).items():
        by_mlflow = requests.post(f"{mlflow_serve}/invocations", json=body, timeout=120)
        by_project = requests.post(model_server.url + "/invocations", json=body, timeout=120)
        assert by_mlflow.status_code == 200, (name, by_mlflow.text[:300])
        assert by_project.status_code == 200, (name, by_project.text[:300])
        served = np.asarray(by_mlflow.json()["predictions"], np.float32)
        np.testing.assert_allclose(served, offline, atol=1e-5, err_msg=name)
        np.testing.assert_allclose(
            np.asarray(by_project.json()["predictions"], np.float32), served, atol=1e-5
        )
    for request_format in REQUEST_FORMATS:  # what the client sends (--format)
        answer = requests.post(
            f"{mlflow_serve}/invocations",
            data=request_body(images, request_format),
            headers={"Content-Type": "application/json"},
            timeout=120,
        )
        assert answer.status_code == 200, (request_format, answer.text[:300])
        np.testing.assert_allclose(answer.json()["predictions"], offline, atol=1e-5)


def test_bad_bodies_get_a_short_4xx_with_the_contract_message(mlflow_serve, registered) -> None:
    too_bright = registered.test_images[:2].astype(np.float64) * 2
    answer = requests.post(
        f"{mlflow_serve}/invocations", json={"instances": too_bright.tolist()}, timeout=60
    )
    assert answer.status_code == 400
    assert len(answer.content) < 1024
    assert answer.json()["message"] == (
        "pixel values must be in [0, 255] (0 background, 255 ink), found [0, 510]"
    )
    wrong_shape = np.zeros((3, 28, 27)).tolist()
    answer = requests.post(f"{mlflow_serve}/invocations", json={"inputs": wrong_shape}, timeout=60)
    assert answer.status_code == 400 and len(answer.content) < 1024
    assert "does not match expected shape (-1, 28, 28)" in answer.json()["message"]


def test_the_registered_model_predicts_where_the_project_cannot_be_imported(
    model_dir,
    registered,
) -> None:
    """Not a toy: the pyfunc's code and contract travel in the artifact, nothing is pickled."""
    assert (model_dir / "code" / "image_contract.py").read_bytes() == CONTRACT_FILE.read_bytes()
    images = registered.test_images[:IMAGES].astype(np.float32)
    script = """
import importlib.abc, json, sys
class Block(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] == "mnist_pipeline":
            raise ModuleNotFoundError(f"No module named {name!r} (blocked)")
sys.meta_path.insert(0, Block())
try:
    import mnist_pipeline
    sys.exit("mnist_pipeline is importable")
except ModuleNotFoundError:
    pass
import mlflow, numpy as np
model = mlflow.pyfunc.load_model(sys.argv[1])
images = np.asarray(json.load(open(sys.argv[2])), np.float32)
print(json.dumps(model.predict(images).tolist()))
assert not [m for m in sys.modules if m.startswith("mnist_pipeline")]
"""
    with tempfile.TemporaryDirectory() as tmp:
        request = Path(tmp, "images.json")
        request.write_text(__import__("json").dumps(images.tolist()))
        done = subprocess.run(
            [sys.executable, "-c", script, str(model_dir), str(request)],
            capture_output=True,
            text=True,
            timeout=300,
            cwd=tmp,
            env={**os.environ, "PYTHONPATH": ""},
            check=False,
        )
    assert done.returncode == 0, done.stderr[-3000:]
    predicted = np.asarray(__import__("json").loads(done.stdout.strip().splitlines()[-1]))
    keras_model = load_keras_model(registered.model_uri, registered.registry_uri)
    expected = keras_model.predict(images[..., None], verbose=0)
    np.testing.assert_allclose(predicted, expected, atol=1e-5)


def test_deploy_refuses_a_model_pickled_against_project_code(
    registered, tmp_path, monkeypatch
) -> None:
    """The format earlier versions registered: the pyfunc class pickled by reference."""
    from mnist_pipeline.registry.pyfunc_model import MnistClassifier

    # As after Kedro's bootstrap (`kedro run` puts src/ on PYTHONPATH): the fresh
    # environment must still not see the project.
    monkeypatch.setenv("PYTHONPATH", str(PROJECT_ROOT / "src"))

    keras_model = load_keras_model(registered.model_uri, registered.registry_uri)
    keras_path = tmp_path / KERAS_FILENAME
    keras_model.save(keras_path)
    with uris(registered.registry_uri):
        with mlflow.start_run():
            info = mlflow.pyfunc.log_model(
                name="model",
                python_model=MnistClassifier(),  # pickled: refers to mnist_pipeline
                artifacts={KERAS_ARTIFACT: str(keras_path)},
                signature=signature(),
                pip_requirements=pip_requirements(),  # the same environment as the good model
            )
        version = mlflow.register_model(info.model_uri, "mnist_legacy")
        mlflow.MlflowClient().set_registered_model_alias(
            "mnist_legacy", "production", version.version
        )
    batch = {"images": registered.test_images[:50], "labels": registered.test_labels[:50]}
    report = validate_production_model(
        batch,
        {"name": "mnist_legacy", "alias": "production", "registry_uri": registered.registry_uri},
        {"min_accuracy": 0.5, "latency_requests": 1},
        {},
        {"env_root": str(ENV_ROOT), "build_if_missing": False, "num_images": 10},
    )
    assert report["deployable"] is False
    assert report["fresh_env"]["loaded"] is False
    (failure,) = report["failures"]
    assert "does not load in its own environment" in failure
    assert "No module named 'mnist_pipeline'" in failure
    assert "re-run the promotion" in failure
    with pytest.raises(DeploymentRejectedError, match="No module named 'mnist_pipeline'"):
        approve_deployment(report, summarise_deployment(report))
    # The model itself is fine in the project's own process: only a fresh environment shows it.
    with uris(registered.registry_uri):
        loaded = mlflow.pyfunc.load_model("models:/mnist_legacy@production")
    assert loaded.predict(as_signature_input(batch["images"][:2])).shape == (2, 10)
