"""docs/extending.md's walk is a test: its blocks, applied as shown, give a node that runs.

Block tags (an HTML comment right before a fenced block):

* ``<!-- add to: PATH -->``: the block is appended to ``PATH``, as shown;
* ``<!-- add to: PATH, after: LINE -->`` / ``before: LINE``: inserted after / before the
  first line of ``PATH`` that reads ``LINE`` (stripped), indented like that line (after) or
  like the line above it (before);
* ``<!-- new file: PATH -->``: ``PATH`` is created with the block;
* ``<!-- file: PATH -->``: an excerpt that must appear in ``PATH`` verbatim (up to a common
  indentation; a line ``...`` stands for lines left out);
* ``<!-- run -->``: the ``kedro run`` command a reader types.

The walk is applied to a scratch copy of the project; the new unit test and the run command
run there, on 200 generated test images and made-up predictions (no model, no TensorFlow).
"""

from __future__ import annotations

import importlib.util
import json
import pickle
import re
import shlex
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import yaml

from mnist_pipeline.parameters import ParametersError, check
from tests.conftest import make_split
from tests.integration.scratch_project import project_copy, scratch_environment

PROJECT_ROOT = Path(__file__).resolve().parents[2]
DOC = PROJECT_ROOT / "docs" / "extending.md"
BLOCK = re.compile(
    r"<!-- (?:(?P<kind>add to|new file|file): (?P<path>[^,\s]+)(?:, (?P<where>after|before): "
    r"(?P<anchor>.+?))?|(?P<run>run)) -->\n```\w*\n(?P<body>.*?)\n```",
    re.S,
)
INDENTS = ("", "    ", "        ", "            ")


def _blocks() -> list[re.Match]:
    return list(BLOCK.finditer(DOC.read_text()))


def _walk() -> list[re.Match]:
    return [m for m in _blocks() if m["kind"] in ("add to", "new file")]


EXCERPTS = [(m["path"], m["body"]) for m in _blocks() if m["kind"] == "file"]


def apply_block(project: Path, block: re.Match) -> None:
    """Apply one ``add to`` / ``new file`` block of the doc to ``project``."""
    path = project / block["path"]
    body = block["body"]
    if block["kind"] == "new file":
        assert not path.exists(), f"{block['path']} exists already"
        path.write_text(body + "\n")
        return
    lines = path.read_text().splitlines()
    if block["where"] is None:
        separator = ["", ""] if path.suffix == ".py" else []
        path.write_text("\n".join([*lines, *separator, body]) + "\n")
        return
    stripped = [line.strip() for line in lines]
    assert block["anchor"] in stripped, f"{block['path']} has no line {block['anchor']!r}"
    at = stripped.index(block["anchor"])
    if block["where"] == "after":
        reference, at = lines[at], at + 1
    else:
        reference = lines[at - 1]
    indent = reference[: len(reference) - len(reference.lstrip())]
    new = [indent + line if line else line for line in body.splitlines()]
    path.write_text("\n".join([*lines[:at], *new, *lines[at:]]) + "\n")


def test_doc_walks_node_test_parameter_schema_wiring_catalog_and_a_run():
    touched = {m["path"] for m in _walk()}
    assert touched == {
        "src/mnist_pipeline/pipelines/evaluation/nodes.py",
        "tests/pipelines/evaluation/test_low_confidence.py",
        "conf/base/parameters_evaluation.yml",
        "src/mnist_pipeline/parameters/schemas.py",
        "src/mnist_pipeline/pipelines/evaluation/pipeline.py",
        "conf/base/catalog_evaluation.yml",
    }
    assert len([m for m in _blocks() if m["run"]]) == 1


@pytest.mark.parametrize(("path", "body"), EXCERPTS, ids=[p for p, _ in EXCERPTS])
def test_excerpt_is_the_file(path, body):
    text = (PROJECT_ROOT / path).read_text()
    chunks: list[list[str]] = [[]]
    for line in body.splitlines():
        if line.strip() == "...":
            chunks.append([])
        else:
            chunks[-1].append(line.rstrip())
    for chunk in filter(None, chunks):
        assert any(
            "\n".join(indent + line if line else line for line in chunk) in text
            for indent in INDENTS
        ), f"{path} no longer holds:\n" + "\n".join(chunk)


def test_paths_named_in_the_doc_exist():
    created = {m["path"] for m in _walk() if m["kind"] == "new file"}
    named = set(re.findall(r"`((?:src|tests|conf|notebooks|docs)/[\w./-]+)`", DOC.read_text()))
    missing = sorted(p for p in named - created if "<" not in p and not (PROJECT_ROOT / p).exists())
    assert not missing


def _scratch_schemas(project: Path, monkeypatch):
    """The scratch copy's ``parameters/schemas.py``, imported beside the installed package."""
    spec = importlib.util.spec_from_file_location(
        "scratch_schemas", project / "src/mnist_pipeline/parameters/schemas.py"
    )
    module = importlib.util.module_from_spec(spec)
    monkeypatch.setitem(sys.modules, spec.name, module)  # pydantic resolves annotations there
    spec.loader.exec_module(module)
    return module


@pytest.mark.slow
@pytest.mark.integration
def test_the_walk_adds_a_node_and_a_parameter_that_run(tmp_path, monkeypatch):
    project = project_copy(PROJECT_ROOT, tmp_path / "project")
    (project / "tests/pipelines/evaluation").mkdir(parents=True)
    for block in _walk():
        apply_block(project, block)

    # The reader's unit test, alone (no conftest: it needs none).
    unit_test = project / "tests/pipelines/evaluation/test_low_confidence.py"
    env = scratch_environment(tmp_path, project)
    pytest_alone = [
        "-m",
        "pytest",
        "-q",
        "-p",
        "no:cacheprovider",
        "--noconftest",
        "-o",
        "addopts=",
    ]
    result = subprocess.run(
        [sys.executable, *pytest_alone, str(unit_test)],
        cwd=project, env=env, capture_output=True, text=True, timeout=300, check=False,
    )  # fmt: skip
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]

    # The schema takes the new key and refuses it misspelt, naming it.
    parameters = yaml.safe_load((project / "conf/base/parameters_evaluation.yml").read_text())
    schemas = _scratch_schemas(project, monkeypatch)
    check(schemas.Evaluation, parameters["evaluation"], "evaluation")
    misspelt = dict(parameters["evaluation"])
    misspelt["low_confidence_treshold"] = misspelt.pop("low_confidence_threshold")
    with pytest.raises(ParametersError, match=r"evaluation\.low_confidence_treshold = 0\.9"):
        check(schemas.Evaluation, misspelt, "evaluation")

    # The reader's command, on saved predictions of 200 test images, with another threshold.
    (run,) = [m["body"] for m in _blocks() if m["run"]]
    command = shlex.split(run)
    assert command[:2] == ["kedro", "run"]
    test = make_split(200, seed=3)
    rng = np.random.default_rng(0)
    probabilities = rng.dirichlet(np.full(10, 0.3), size=200).astype(np.float32)
    for folder, name, value in (
        ("02_intermediate", "mnist_test.pkl", test),
        ("07_model_output", "test_probabilities.pkl", probabilities),
    ):
        (tmp_path / "data" / folder).mkdir(parents=True, exist_ok=True)
        (tmp_path / "data" / folder / name).write_bytes(pickle.dumps(value))
    command[0] = str(Path(sys.executable).with_name("kedro"))
    command += ["--params", "evaluation.low_confidence_threshold=0.6"]
    result = subprocess.run(
        command, cwd=project, env=env, capture_output=True, text=True, timeout=600, check=False
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    report = json.loads((tmp_path / "data/08_reporting/low_confidence.json").read_text())
    unsure = probabilities.max(axis=1) < 0.6
    correct = probabilities.argmax(axis=1) == test["labels"]
    assert 0 < unsure.sum() < 200  # the threshold splits the made-up predictions
    assert report == {
        "threshold": 0.6,
        "unsure_share": pytest.approx(unsure.mean()),
        "unsure_accuracy": pytest.approx(correct[unsure].mean()),
    }
