"""The model's own fresh environment, built from its ``python_env.yaml`` + ``requirements.txt``
alone as MLflow's serving platforms build it (:func:`build`, cached under :func:`env_root`), and
used to predict the way ``mlflow models predict`` does there (:func:`predict_in_fresh_env`; why
not that command itself: docs/serving.md). Both rely on MLflow internals (how it names an
environment, the script it runs there), so :func:`env_dir` refuses an MLflow outside
:data:`SUPPORTED_MLFLOW` by name.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

from mnist_pipeline.versions import require

ENV_MANAGER = "uv"
DEFAULT_ENV_ROOT = ".mlflow-envs"
PREDICT_TIMEOUT_S = 600.0
logger = logging.getLogger(__name__)
# What `mlflow models predict` runs inside the model's environment.
PREDICT_MODULE = "mlflow.pyfunc._mlflow_pyfunc_backend_predict"
# The MLflow releases whose private environment naming and predict script this module uses,
# [lowest, highest): tested with 3.17 (requirements.lock and the Databricks clusters' lock).
SUPPORTED_MLFLOW = ("3.17", "3.18")
MLFLOW = (sys.executable, "-m", "mlflow")


class FreshEnvError(RuntimeError):
    """The model could not load or predict in its own environment (the message says why)."""


class FreshEnvMissingError(FreshEnvError):
    """The cached environment has not been built (``make model-env``)."""


def env_root(path: str | os.PathLike | None = None) -> Path:
    """Where the environments live: ``path``, else ``MLFLOW_ENV_ROOT``, else ``.mlflow-envs``."""
    chosen = path or os.environ.get("MLFLOW_ENV_ROOT") or DEFAULT_ENV_ROOT
    return Path(chosen).expanduser().resolve()


def tool_env(root: Path) -> dict[str, str]:
    """This process's environment, with ``MLFLOW_ENV_ROOT`` and this venv's ``bin/`` on PATH.

    MLflow shells out to ``uv`` and ``mlflow``: they are found in the running interpreter's
    folder even when the virtual environment is not activated.
    """
    # Without PYTHONPATH: Kedro's bootstrap puts the project's src/ there, which would let a
    # model that needs project code load "in its own environment" after all. Without the
    # caller's MLflow experiment and run: `mlflow.set_experiment` (kedro-mlflow) exports
    # MLFLOW_EXPERIMENT_ID, and the child refused to start when that experiment was not in
    # the store it saw.
    dropped = ("PYTHONPATH", "PYTHONHOME", "MLFLOW_EXPERIMENT_ID", "MLFLOW_RUN_ID")
    env = {k: v for k, v in os.environ.items() if k not in dropped}
    env["MLFLOW_ENV_ROOT"] = str(root)
    env["PATH"] = os.pathsep.join([str(Path(sys.executable).parent), env.get("PATH", "")])
    return env


def env_dir(model_dir: Path, root: Path) -> Path:
    """The environment MLflow uses for the model in ``model_dir`` (it may not exist yet)."""
    import mlflow

    require("mlflow", mlflow.__version__, SUPPORTED_MLFLOW, user=__name__)
    from mlflow.utils.virtualenv import _get_python_env, _get_virtualenv_name

    return root / _get_virtualenv_name(_get_python_env(model_dir), model_dir)


def _skeleton_model(folder: Path) -> Path:
    """A model folder with exactly the environment files of every model the project logs."""
    import mlflow

    from mnist_pipeline.registry import model

    path = folder / "model"
    mlflow.pyfunc.save_model(
        str(path),
        python_model=str(model.PYFUNC_MODEL_FILE),
        code_paths=[str(model.CONTRACT_FILE)],
        signature=model.signature(),
        # an example, as every logged model has one (and MLflow warns without it)
        input_example=model.as_signature_input(np.zeros((1, 28, 28), np.uint8)),
        pip_requirements=model.pip_requirements(),
    )
    return path


def build(root: Path | None = None, env_manager: str = ENV_MANAGER) -> dict[str, Any]:
    """Create (or find) the environment of the project's models; ``{"env_dir", "build_s", ...}``.

    Raises:
        FreshEnvError: the environment could not be built (the tool's output's last lines).
    """
    root = env_root(root)
    root.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="mnist-model-env-") as tmp:
        model_dir = _skeleton_model(Path(tmp))
        target = env_dir(model_dir, root)
        existed = target.exists()
        began = time.perf_counter()
        if not existed:
            _prepare(model_dir, root, env_manager, target)
        seconds = time.perf_counter() - began
    return {
        "env_dir": str(target),
        "env_manager": env_manager,
        "reused": existed,
        "build_s": round(seconds, 1),
    }


def _prepare(model_dir: Path, root: Path, env_manager: str, target: Path) -> None:
    """``mlflow models prepare-env`` (it honours ``MLFLOW_ENV_ROOT``), bytecode compiled
    while installing: the first load there would otherwise compile TensorFlow (about 20 s)."""
    _run(
        [*MLFLOW, "models", "prepare-env", "-m", str(model_dir), "--env-manager", env_manager],
        {**tool_env(root), "UV_COMPILE_BYTECODE": "1"},
        what=f"building the model environment {target}",
    )


def _model_env(target: Path) -> dict[str, str]:
    """The environment of a process that runs in ``target`` as if activated, and nothing of
    this project: no ``PYTHONPATH``, this venv neither on ``PATH`` nor as ``VIRTUAL_ENV``."""
    env = tool_env(target.parent)
    here = str(Path(sys.executable).parent)
    path = [p for p in env["PATH"].split(os.pathsep) if p and p != here]
    env["PATH"] = os.pathsep.join([str(target / "bin"), *path])
    env["VIRTUAL_ENV"] = str(target)
    return env


def _run(
    command: list[str], env: dict[str, str], what: str, cwd: Path | None = None
) -> subprocess.CompletedProcess:
    try:
        done = subprocess.run(
            command,
            env=env,
            cwd=cwd,
            capture_output=True,
            text=True,
            timeout=PREDICT_TIMEOUT_S,
            check=False,
        )
    except subprocess.TimeoutExpired as exc:
        raise FreshEnvError(f"{what} took longer than {PREDICT_TIMEOUT_S:.0f} s") from exc
    if done.returncode != 0:
        raise FreshEnvError(f"{what} failed: {explain_failure(done.stdout + done.stderr)}")
    return done


def explain_failure(output: str) -> str:
    """The one line of a failed model load/predict that says why (e.g. the missing module)."""
    lines = [line.strip() for line in output.splitlines() if line.strip()]
    for marker in ("ModuleNotFoundError", "ImportError", "AttributeError: Can't get attribute"):
        for line in reversed(lines):
            if marker in line:
                reason = line[line.index(marker) :]
                if "mnist_pipeline" in reason:
                    reason += (
                        " — the model was pickled against this project's code and cannot load "
                        "without it; re-run the promotion to register it self-contained"
                    )
                return reason[:600]
    errors = [line for line in lines if "Error" in line or "Exception" in line]
    return (errors[-1] if errors else (lines[-1] if lines else "no output"))[:600]


def predict_in_fresh_env(
    model_dir: Path,
    images: np.ndarray,
    root: Path | None = None,
    *,
    env_manager: str = ENV_MANAGER,
    build_if_missing: bool = True,
) -> tuple[np.ndarray, dict[str, Any]]:
    """Load the model in ``model_dir`` in its own environment and predict ``images``.

    Args:
        model_dir: a downloaded MLflow model folder.
        images: float32 (N, 28, 28), the signature's input.
        root: environments root (see :func:`env_root`).
        env_manager: ``uv`` (finds a local Python of the model's version) or ``virtualenv``
            (needs pyenv).
        build_if_missing: build the environment when it is not cached (tests say ``False``).

    Returns:
        ``(probabilities (N, 10), {"env_dir", "env_manager", "reused", "build_s",
        "predict_s"})``.

    Raises:
        FreshEnvMissingError: not cached and ``build_if_missing`` is false.
        FreshEnvError: the model did not load or predict there; the message says why.
    """
    root = env_root(root)
    target = env_dir(model_dir, root)
    existed = target.exists()
    if not existed and not build_if_missing:
        raise FreshEnvMissingError(
            f"the model's environment {target} is not built: run `make model-env` "
            f"(it builds {root.name}/ from the project's pinned model requirements)"
        )
    began = time.perf_counter()
    if not existed:
        if shutil.which("uv", path=tool_env(root)["PATH"]) is None and env_manager == "uv":
            raise FreshEnvError(
                "`uv` is not installed: `pip install uv` (see README, Prerequisites)"
            )
        # `make run` does not build it (the sandbox job never loads the model there): the
        # first deploy check does, unless `make model-env` (or make test) did.
        logger.info(
            "the model's environment %s is not built (`make model-env` builds it ahead): "
            "building it now with %s, about 1-2 minutes",
            target,
            env_manager,
        )
        _prepare(model_dir, root, env_manager, target)
    with tempfile.TemporaryDirectory(prefix="mnist-fresh-predict-") as tmp:
        request, answer = Path(tmp, "input.json"), Path(tmp, "output.json")
        request.write_text(json.dumps({"inputs": np.asarray(images, np.float32).tolist()}))
        _run(
            [
                *(str(target / "bin" / "python"), "-m", PREDICT_MODULE),
                *("--model-uri", Path(model_dir).resolve().as_uri(), "--content-type", "json"),
                *("--input-path", str(request), "--output-path", str(answer)),
            ],
            _model_env(target),
            what=f"loading and predicting with the model in its own {env_manager} environment",
            cwd=Path(tmp),  # an empty folder: nothing of the project is importable from here
        )
        seconds = time.perf_counter() - began
        predictions = json.loads(answer.read_text())
    if isinstance(predictions, dict):
        predictions = predictions.get("predictions", predictions)
    info = {
        "env_dir": str(target),
        "env_manager": env_manager,
        "reused": existed,
        ("predict_s" if existed else "build_and_predict_s"): round(seconds, 1),
    }
    return np.asarray(predictions, dtype=np.float32), info


def main(argv: list[str] | None = None) -> int:
    """``python -m mnist_pipeline.registry.model_env [ENV_ROOT]``: build the environment."""
    args = sys.argv[1:] if argv is None else argv
    try:
        report = build(Path(args[0]) if args else None)
    except FreshEnvError as exc:
        print(f"model environment: {exc}", file=sys.stderr)
        return 1
    state = "already built" if report["reused"] else f"built in {report['build_s']} s"
    print(f"model environment {report['env_dir']} ({report['env_manager']}): {state}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
