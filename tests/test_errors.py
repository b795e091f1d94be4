"""Expected failures end with a message and a fix; anything else keeps its traceback."""

from __future__ import annotations

import io

import pytest
from click.testing import CliRunner
from kedro.io import DatasetError

from mnist_pipeline import cli as project_cli
from mnist_pipeline.errors import EXPECTED, expected_failure, report
from mnist_pipeline.registry.gate import GateRefusedError


def test_a_known_failure_anywhere_in_the_cause_chain_is_expected():
    try:
        try:
            raise DatasetError("Could not read https://mirror/train-images-idx3-ubyte.gz")
        except DatasetError as inner:
            raise RuntimeError("node failed") from inner
    except RuntimeError as exc:
        failure = expected_failure(exc)
    assert failure is not None
    assert failure.message.startswith("DatasetError: Could not read https://mirror/")
    assert "MNIST_SOURCE" in failure.fix


def test_gate_refusal_is_expected_and_says_what_to_do():
    failure = expected_failure(GateRefusedError("sandbox mnist_cnn v3 refused"))
    assert failure is not None
    stream = io.StringIO()
    report(failure, stream)
    lines = stream.getvalue().splitlines()
    assert lines == [
        "Error: GateRefusedError: sandbox mnist_cnn v3 refused",
        f"Fix: {EXPECTED['mnist_pipeline.registry.gate.GateRefusedError']}",
    ]


@pytest.mark.parametrize("exc", [ZeroDivisionError("x"), KeyError("k"), ValueError("bug")])
def test_anything_else_is_unexpected(exc):
    assert expected_failure(exc) is None


def test_every_listed_class_exists():
    """A renamed exception would silently fall back to the traceback: names must resolve."""
    import importlib

    for name in EXPECTED:
        module, _, cls = name.rpartition(".")
        try:
            found = getattr(importlib.import_module(module), cls)
        except ModuleNotFoundError:
            pytest.fail(f"{name}: no module {module}")
        assert isinstance(found, type) and issubclass(found, BaseException), name


def _invoke(monkeypatch, error: BaseException):
    def fail(**_kwargs):
        raise error

    monkeypatch.setattr(project_cli.kedro_run, "callback", fail)
    return CliRunner().invoke(project_cli.cli, ["run", "--env", "azure"])


def test_run_ends_an_expected_failure_with_message_and_fix(monkeypatch):
    result = _invoke(monkeypatch, GateRefusedError("refused by the quality gate"))
    assert result.exit_code == 1
    assert "Error: GateRefusedError: refused by the quality gate" in result.output
    assert "Fix: " in result.output
    assert isinstance(result.exception, SystemExit)


def test_run_lets_an_unexpected_error_through_with_its_traceback(monkeypatch):
    result = _invoke(monkeypatch, ZeroDivisionError("a bug"))
    assert result.exit_code == 1
    assert isinstance(result.exception, ZeroDivisionError)  # re-raised as is
    assert "Fix:" not in result.output


def test_run_keeps_kedros_options():
    from kedro.framework.cli.project import run as kedro_run

    ours = {p.name for p in project_cli.run.params}
    assert ours == {p.name for p in kedro_run.params}
    assert "pipelines" in ours
