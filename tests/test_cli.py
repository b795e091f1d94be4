"""``kedro serve`` with settings that cannot work: one line naming the setting, a non-zero exit,
no traceback, before any model is loaded (the command runs in this process)."""

from __future__ import annotations

import pytest
from click.testing import CliRunner

from mnist_pipeline import cli as project_cli


@pytest.fixture
def serve(monkeypatch, project_root, tmp_path):
    """``kedro serve --env gcp ARGS`` from the project root, against an empty registry."""
    monkeypatch.chdir(project_root)
    monkeypatch.setenv("MLFLOW_PRODUCTION_TRACKING_URI", f"sqlite:///{tmp_path}/none.db")
    monkeypatch.setenv("MLFLOW_PRODUCTION_REGISTRY_URI", f"sqlite:///{tmp_path}/none.db")
    monkeypatch.setenv("MNIST_INFERENCE_LOG", str(tmp_path / "log"))

    def invoke(*args: str):
        return CliRunner().invoke(project_cli.cli, ["serve", "--env", "gcp", *args])

    return invoke


def _one_line(result, exit_code: int, *parts: str) -> None:
    assert result.exit_code == exit_code, result.output
    assert isinstance(result.exception, SystemExit), result.exception  # no traceback
    assert "Traceback" not in result.output
    [line] = [line for line in result.output.splitlines() if line.startswith("Error: ")]
    for part in parts:
        assert part in line, line


def test_an_inference_log_folder_that_cannot_be_created(serve, monkeypatch, tmp_path):
    (tmp_path / "a-file").write_text("not a folder")
    monkeypatch.setenv("MNIST_INFERENCE_LOG", str(tmp_path / "a-file" / "log"))
    result = serve()
    _one_line(result, 1, f"cannot use {tmp_path}/a-file/log", "MNIST_INFERENCE_LOG")
    assert "Fix: fix inference_log.path" in result.output


@pytest.mark.parametrize(
    ("section", "key"), [("serving", "max_bach_size"), ("inference_log", "pixel_sample_rate")]
)
def test_a_misspelt_key_stops_it_before_anything_loads(serve, monkeypatch, section, key):
    parameters = project_cli._parameters

    def misspelt(env):
        loaded = parameters(env)
        loaded[section][key] = 1
        return loaded

    monkeypatch.setattr(project_cli, "_parameters", misspelt)
    _one_line(serve(), 1, f"{section}.{key} = 1: unknown key; allowed here: ")


def test_a_port_that_is_not_a_number(serve, monkeypatch):
    monkeypatch.setenv("MNIST_SERVING_PORT", "abc")
    _one_line(serve(), 1, "serving.port = 'abc'", "valid integer")


def test_a_port_out_of_range(serve):
    _one_line(serve("--port", "70000"), 2, "'--port'", "70000 is not in the range 0<=x<=65535")


def test_a_negative_probe_retry_count(serve, monkeypatch):
    monkeypatch.setenv("MNIST_REGISTRY_PROBE_RETRIES", "-1")
    result = serve()
    _one_line(result, 1, "MNIST_REGISTRY_PROBE_RETRIES='-1': expected a whole number ≥ 0")
    assert "Fix: set MNIST_REGISTRY_PROBE_TIMEOUT_S" in result.output


def test_the_server_module_refuses_a_port_out_of_range(capsys):
    from mnist_pipeline.serving.__main__ import main

    with pytest.raises(SystemExit) as exited:
        main(["--model-uri", "models:/mnist_cnn@production", "--port", "70000"])
    assert exited.value.code == 2
    assert "expected a TCP port 0-65535" in capsys.readouterr().err


def test_deploy_against_an_unreachable_production_server_fails_at_once_with_its_report(
    monkeypatch, project_root, tmp_path
):
    """kedro-mlflow would retry for minutes (250 s) and end in raw MlflowException tracebacks
    with no report; the bounded probe stops the run before its first node, in one line, and
    the deployment report says NOT DEPLOYABLE (an earlier report is not left as this run's)."""
    import json
    import socket

    from kedro.framework.startup import bootstrap_project

    with socket.socket() as sock:  # a port nothing listens on: a stopped server
        sock.bind(("127.0.0.1", 0))
        url = f"http://127.0.0.1:{sock.getsockname()[1]}"
    monkeypatch.chdir(project_root)
    for name in ("TRACKING_URI", "REGISTRY_URI"):
        monkeypatch.setenv(f"MLFLOW_PRODUCTION_{name}", url)
    monkeypatch.setenv("MNIST_DATA_ROOT", str(tmp_path / "data"))
    reports = tmp_path / "data" / "08_reporting"
    reports.mkdir(parents=True)
    (reports / "deployment_report.json").write_text('{"deployable": true}')  # an old verdict
    bootstrap_project(project_root)
    result = CliRunner().invoke(project_cli.cli, ["run", "--env", "gcp", "--pipelines", "deploy"])
    _one_line(result, 1, f"production tracking store {url} is unreachable")
    assert "Fix: check the store's URI (MLFLOW_<WORKSPACE>_TRACKING_URI)" in result.output
    written = json.loads((reports / "deployment_report.json").read_text())
    assert written["deployable"] is False and written["model"]["registry_uri"] == url
    [failure] = written["failures"]
    assert failure.startswith("the deploy did not start: RunStoreUnreachableError: production")
    assert "NOT DEPLOYABLE" in (reports / "deployment_summary.md").read_text()
