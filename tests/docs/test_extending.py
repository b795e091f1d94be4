"""docs/extending.md stays true: its file excerpts are the files, its command runs.

A fenced block right after ``<!-- file: PATH -->`` must appear in ``PATH`` verbatim (up to
a common indentation; a line ``...`` in the block stands for lines left out). The block
after ``<!-- run -->`` is the ``kedro run`` command a reader types; it runs here in a scratch
copy of the project on 200 generated images (with a validation size that fits them).
"""

from __future__ import annotations

import json
import pickle
import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import make_split
from tests.integration.scratch_project import project_copy, scratch_environment

PROJECT_ROOT = Path(__file__).resolve().parents[2]
DOC = PROJECT_ROOT / "docs" / "extending.md"
BLOCK = re.compile(
    r"<!-- (?:file: (?P<path>\S+)|(?P<run>run)) -->\n```\w*\n(?P<body>.*?)\n```", re.S
)
INDENTS = ("", "    ", "        ", "            ")


def _blocks() -> list[re.Match]:
    return list(BLOCK.finditer(DOC.read_text()))


FILE_BLOCKS = [(m["path"], m["body"]) for m in _blocks() if m["path"]]


def _appears_in(chunk: list[str], text: str) -> bool:
    for indent in INDENTS:
        if "\n".join(indent + line if line else line for line in chunk) in text:
            return True
    return False


def test_doc_shows_the_node_its_test_parameters_wiring_and_a_run():
    paths = {path for path, _ in FILE_BLOCKS}
    assert {
        "src/mnist_pipeline/pipelines/preprocessing/nodes.py",
        "tests/pipelines/preprocessing/test_augmentation.py",
        "conf/base/parameters_preprocessing.yml",
        "src/mnist_pipeline/pipelines/preprocessing/pipeline.py",
    } <= paths
    assert len([m for m in _blocks() if m["run"]]) == 1


@pytest.mark.parametrize(("path", "body"), FILE_BLOCKS, ids=[p for p, _ in FILE_BLOCKS])
def test_excerpt_is_the_file(path, body):
    text = (PROJECT_ROOT / path).read_text()
    chunks: list[list[str]] = [[]]
    for line in body.splitlines():
        if line.strip() == "...":
            chunks.append([])
        else:
            chunks[-1].append(line.rstrip())
    for chunk in filter(None, chunks):
        assert _appears_in(chunk, text), f"{path} no longer holds:\n" + "\n".join(chunk)


def test_paths_named_in_the_doc_exist():
    named = set(re.findall(r"`((?:src|tests|conf|notebooks|docs)/[\w./-]+)`", DOC.read_text()))
    missing = sorted(p for p in named if "<" not in p and not (PROJECT_ROOT / p).exists())
    assert not missing


@pytest.mark.slow
@pytest.mark.integration
def test_run_command_augments_the_training_split(tmp_path):
    (run,) = [m["body"] for m in _blocks() if m["run"]]
    command = shlex.split(run)
    assert command[:2] == ["kedro", "run"]
    project = project_copy(PROJECT_ROOT, tmp_path / "project")
    env = scratch_environment(tmp_path, project)
    intermediate = tmp_path / "data" / "02_intermediate"
    intermediate.mkdir(parents=True)
    for name, split in (("mnist_train", make_split(200, seed=1)), ("mnist_test", make_split(50))):
        (intermediate / f"{name}.pkl").write_bytes(pickle.dumps(split))
    # The reader's command, with a validation size that 200 images allow.
    params = command.index("--params") + 1
    command[params] += ",preprocessing.validation_size=0.2"
    command[0] = str(Path(sys.executable).with_name("kedro"))
    result = subprocess.run(
        command, cwd=project, env=env, capture_output=True, text=True, timeout=600, check=False
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    fingerprint = json.loads((tmp_path / "data/05_model_input/fingerprint.json").read_text())
    sizes = {name: split["num_examples"] for name, split in fingerprint["splits"].items()}
    assert sizes == {"train": 2 * 160, "validation": 40, "test": 50}
