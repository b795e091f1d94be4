"""The environment of the model's fresh-environment subprocess (registry/model_env.py)."""

from __future__ import annotations

from pathlib import Path

import pytest

from mnist_pipeline.registry.model_env import tool_env


def test_the_fresh_environment_gets_no_project_path_and_no_callers_experiment(monkeypatch):
    """kedro-mlflow's `mlflow.set_experiment` exports MLFLOW_EXPERIMENT_ID; a child that
    inherits it refuses to start when that experiment is not in the store it sees."""
    for name, value in {
        "PYTHONPATH": "/project/src",
        "MLFLOW_EXPERIMENT_ID": "1",
        "MLFLOW_RUN_ID": "abc",
        "MLFLOW_TRACKING_URI": "sqlite:///x.db",
    }.items():
        monkeypatch.setenv(name, value)
    env = tool_env(Path("/envs"))
    assert not {"PYTHONPATH", "MLFLOW_EXPERIMENT_ID", "MLFLOW_RUN_ID"} & set(env)
    assert env["MLFLOW_TRACKING_URI"] == "sqlite:///x.db"  # the rest is passed on
    assert env["MLFLOW_ENV_ROOT"] == "/envs"


def test_prediction_runs_in_the_cached_environment_and_builds_nothing(tmp_path, monkeypatch):
    """The model's own interpreter, from an empty folder, without the project on any path;
    not `mlflow models predict`, which rebuilds an environment under a temporary root on
    every call (MLflow 3 ignores MLFLOW_ENV_ROOT there)."""
    import json
    import sys

    import numpy as np

    from mnist_pipeline.registry import model_env

    target = tmp_path / "envs" / "mlflow-abc"
    (target / "bin").mkdir(parents=True)
    # A stand-in interpreter: records how it was started and answers ten probabilities.
    python = target / "bin" / "python"
    python.write_text(
        f"#!{sys.executable}\n"
        "import json, os, sys\n"
        "args = sys.argv[1:]\n"
        "out = args[args.index('--output-path') + 1]\n"
        "seen = {'args': args, 'cwd': os.getcwd(), 'env': dict(os.environ)}\n"
        f"open({str(tmp_path / 'seen.json')!r}, 'w').write(json.dumps(seen))\n"
        "json.dump({'predictions': [[0.1] * 10]}, open(out, 'w'))\n"
    )
    python.chmod(0o755)
    monkeypatch.setattr(model_env, "env_dir", lambda model_dir, root: target)
    monkeypatch.setattr(model_env, "_prepare", lambda *a: pytest.fail("nothing is built"))
    monkeypatch.setenv("PYTHONPATH", str(tmp_path / "project" / "src"))

    model_dir = tmp_path / "model"
    model_dir.mkdir()
    probabilities, info = model_env.predict_in_fresh_env(
        model_dir, np.zeros((1, 28, 28), np.float32), tmp_path / "envs", build_if_missing=False
    )
    assert probabilities.shape == (1, 10)
    assert info["reused"] is True and "predict_s" in info
    seen = json.loads((tmp_path / "seen.json").read_text())
    assert seen["args"][:2] == ["-m", model_env.PREDICT_MODULE]
    assert seen["args"][seen["args"].index("--model-uri") + 1] == model_dir.resolve().as_uri()
    assert Path(seen["cwd"]).name.startswith("mnist-fresh-predict-")  # an empty tmp folder
    assert "PYTHONPATH" not in seen["env"]
    assert seen["env"]["VIRTUAL_ENV"] == str(target)
    assert seen["env"]["PATH"].split(":")[0] == str(target / "bin")
    assert str(Path(sys.executable).parent) not in seen["env"]["PATH"].split(":")


def test_a_missing_environment_is_refused_when_building_is_off(tmp_path, monkeypatch):
    import numpy as np

    from mnist_pipeline.registry import model_env

    monkeypatch.setattr(model_env, "env_dir", lambda model_dir, root: root / "mlflow-abc")
    model_dir = tmp_path / "model"
    model_dir.mkdir()
    with pytest.raises(model_env.FreshEnvMissingError, match="make model-env"):
        model_env.predict_in_fresh_env(
            model_dir, np.zeros((1, 28, 28), np.float32), tmp_path / "envs",
            build_if_missing=False,
        )  # fmt: skip


def test_building_a_missing_environment_says_which_make_target_builds_it_ahead(
    tmp_path, monkeypatch, caplog
):
    """`make run` leaves the environment unbuilt: the first deploy check builds it, and says so."""
    import logging

    import numpy as np

    from mnist_pipeline.registry import model_env

    monkeypatch.setattr(model_env, "env_dir", lambda model_dir, root: root / "mlflow-abc")

    def stop_before_building(*args):
        raise model_env.FreshEnvError("stopped before building")

    monkeypatch.setattr(model_env, "_prepare", stop_before_building)
    model_dir = tmp_path / "model"
    model_dir.mkdir()
    with (
        caplog.at_level(logging.INFO, logger=model_env.__name__),
        pytest.raises(model_env.FreshEnvError, match="stopped before building"),
    ):
        model_env.predict_in_fresh_env(
            model_dir, np.zeros((1, 28, 28), np.float32), tmp_path / "envs"
        )
    assert "is not built (`make model-env` builds it ahead): building it now" in caplog.text
