"""Every command the README and docs/ show a reader parses and names things that exist.

Each ``make``/``kedro``/``.venv/bin/...`` command of a fenced shell block or an inline code
span is checked as the shell and kedro's own CLI would read it: the ``make`` target is in
the Makefile; the ``kedro`` subcommand and its options parse with kedro's click command
tree (plugins included); ``--env`` is a folder of ``conf/``, ``--pipelines`` a registered
pipeline, ``--params`` keys exist in that environment's parameters, ``--nodes`` are nodes;
files handed to ``.venv/bin/pytest`` or ``python`` exist. ``<placeholders>`` are skipped.
Commands that need a network or long runs are not executed here; docs/extending.md's
``kedro run`` is (tests/docs/test_extending.py).
"""

from __future__ import annotations

import re
import shlex
from pathlib import Path

import click
import pytest

PROJECT_ROOT = Path(__file__).resolve().parents[2]
DOCS = [PROJECT_ROOT / "README.md", *sorted((PROJECT_ROOT / "docs").glob("*.md"))]
FENCE = re.compile(r"```(?:bash|sh|shell|console)\n(.*?)```", re.S)
INLINE = re.compile(r"(?<!`)`((?:kedro|make|\.venv/bin/)[^`\n]*)`(?!`)")
ASSIGNMENT = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*=")


def _commands() -> list[tuple[str, str]]:
    found = []
    for doc in DOCS:
        text = doc.read_text()
        name = str(doc.relative_to(PROJECT_ROOT))
        for block in FENCE.findall(text):
            for raw in block.replace("\\\n", " ").splitlines():
                line = raw.strip().removeprefix("$ ")
                if line and not line.startswith(("#", "export ")):
                    found.append((name, line))
        prose = FENCE.sub("", text)
        found += [(name, span) for span in INLINE.findall(prose)]
    return sorted(set(found))


COMMANDS = [
    (doc, line)
    for doc, line in _commands()
    if (words := [w for w in shlex.split(line, comments=True) if not ASSIGNMENT.match(w)])
    and (words[0] in ("make", "kedro") or words[0].startswith(".venv/bin/"))
]


@pytest.fixture(scope="module")
def kedro_cli():
    from kedro.framework.cli.cli import KedroCLI
    from kedro.framework.startup import bootstrap_project

    bootstrap_project(PROJECT_ROOT)
    return KedroCLI(PROJECT_ROOT)


@pytest.fixture(scope="module")
def registered():
    from kedro.framework.project import configure_project

    from mnist_pipeline.pipeline_registry import register_pipelines

    configure_project("mnist_pipeline")
    return register_pipelines()


def _parameters(env: str | None) -> dict:
    from kedro.config import OmegaConfigLoader

    from mnist_pipeline.settings import CONFIG_LOADER_ARGS

    loader = OmegaConfigLoader(
        str(PROJECT_ROOT / "conf"), **{**CONFIG_LOADER_ARGS, "default_run_env": env or "local"}
    )
    return loader["parameters"]


def _has_key(tree: dict, dotted: str) -> bool:
    for key in dotted.split("."):
        if not isinstance(tree, dict) or key not in tree:
            return False
        tree = tree[key]
    return True


def _flatten(tree: dict, prefix: str = "") -> list[str]:
    keys = []
    for key, value in tree.items():
        path = f"{prefix}{key}"
        keys += _flatten(value, path + ".") if isinstance(value, dict) else [path]
    return keys


def _check_kedro(args: list[str], kedro_cli, registered) -> None:
    context = click.Context(kedro_cli)
    command, names = kedro_cli, []
    while isinstance(command, click.Group) and args and not args[0].startswith("-"):
        name = args.pop(0)
        command = command.get_command(context, name)
        assert command is not None, f"no such command: kedro {' '.join([*names, name])}"
        names.append(name)
    # Kedro 1.7 deprecates --pipeline (a KedroDeprecationWarning on every run).
    assert "--pipeline" not in args, "--pipeline is deprecated: use --pipelines"
    if any("<" in arg for arg in args):
        return  # a placeholder: only the command itself can be checked
    params = command.make_context(" ".join(names), args).params  # unknown options raise
    env = params.get("env")
    if env:
        assert (PROJECT_ROOT / "conf" / env).is_dir(), f"--env {env}: no conf/{env}/"
    for pipeline in [params.get("pipeline"), *(params.get("pipelines") or [])]:
        if pipeline:
            assert pipeline in registered, f"--pipelines {pipeline}: not registered"
    nodes = {node.name for node in registered["__default__"].nodes}
    for pipeline in registered.values():
        nodes |= {node.name for node in pipeline.nodes}
    for node in params.get("node_names") or []:
        assert node in nodes, f"--nodes {node}: no such node"
    if params.get("params") and names == ["run"]:
        parameters = _parameters(env)
        for key in _flatten(params["params"]):
            assert _has_key(parameters, key), f"--params {key}: no such parameter"


IDS = [f"{doc}: {line.split(' #')[0].strip()}" for doc, line in COMMANDS]


@pytest.mark.parametrize(("doc", "line"), COMMANDS, ids=IDS)
def test_command_is_valid(doc, line, kedro_cli, registered):
    words = [w for w in shlex.split(line, comments=True) if not ASSIGNMENT.match(w)]
    program, args = words[0], words[1:]
    if program == "make":
        makefile = (PROJECT_ROOT / "Makefile").read_text()
        for target in (a for a in args if not a.startswith("-") and "=" not in a):
            assert re.search(rf"^{re.escape(target)}:", makefile, re.M), f"no make target {target}"
    elif program in ("kedro", ".venv/bin/kedro"):
        _check_kedro(list(args), kedro_cli, registered)
    else:
        assert (PROJECT_ROOT / program).name in {
            "pytest",
            "python",
            "kedro",
            "ruff",
            "pip",
            "mlflow",
        }
        # The script or test paths handed over (option values such as URIs are not paths).
        for path in args[:1] + [a for a in args[1:] if a.startswith("tests/")]:
            if "/" in path and not path.startswith("-"):
                assert (PROJECT_ROOT / path.split("::")[0]).exists(), f"{path} does not exist"


def test_docs_show_commands():
    assert any(line.startswith("make test") for _, line in COMMANDS)
    assert any(line.startswith("kedro run") for _, line in COMMANDS)


# Every place a reader or a test copies a command from: no deprecated singular option.
# The option given a value (`--pipeline deploy`, `--pipeline=x`, `"--pipeline", "x"`); prose
# that names the deprecated flag (`--pipeline` in backticks or quotes) is fine.
_SINGULAR = re.compile("--pipeline" + r"""(?:[ =][\w<]|", ")""")
_COMMAND_SOURCES = ["README.md", "Makefile", "docs", "notebooks", "tests", "benchmarks", "src"]


def test_no_deprecated_pipeline_option_anywhere():
    offenders = []
    for source in _COMMAND_SOURCES:
        root = PROJECT_ROOT / source
        files = [root] if root.is_file() else sorted(root.rglob("*"))
        for path in files:
            if path == Path(__file__).resolve():
                continue  # this test names the option it looks for
            if path.suffix in {".md", ".py", ".ipynb", ".yml", ""} and path.is_file():
                text = path.read_text(errors="replace")
                offenders += [
                    f"{path.relative_to(PROJECT_ROOT)}:{text.count(chr(10), 0, m.start()) + 1}"
                    for m in _SINGULAR.finditer(text)
                ]
    assert not offenders, f"--pipeline (deprecated) still shown in: {offenders}"
