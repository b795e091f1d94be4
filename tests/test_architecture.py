"""Imports point down: the layer order of docs/architecture.md holds for every import.

A *unit* is a top-level module or package of ``src/mnist_pipeline`` (``registry``,
``storage``, ``pipelines``...). Every import of the project's own code is read with
:mod:`ast`, at module level and inside functions, absolute and relative, and mapped to the
unit it names. The layer order is the table under "Layers" in docs/architecture.md (read
from there, so the page and this test cannot disagree). The test fails, naming file:line,
for an import cycle between units, an import of a higher layer from a lower one, and a
function-local import of project code without a ``# lazy: <why>`` comment (on its line, or
above its run of import lines) saying it saves start-up time.
"""

from __future__ import annotations

import ast
import re
from dataclasses import dataclass
from pathlib import Path

import pytest

PROJECT_ROOT = Path(__file__).resolve().parents[1]
PACKAGE = "mnist_pipeline"
SOURCE = PROJECT_ROOT / "src" / PACKAGE
DOC = PROJECT_ROOT / "docs" / "architecture.md"
LAZY = re.compile(r"#\s*lazy\b", re.I)


@dataclass(frozen=True)
class Import:
    source: str  # unit that imports
    target: str  # unit imported
    where: str  # src/mnist_pipeline/<file>:<line>
    local: bool  # inside a function
    lazy_comment: bool  # "# lazy: ..." on the same or the previous line


def layers(doc: str | None = None) -> list[list[str]]:
    """The units of each layer, top first, from the "Layers" table of docs/architecture.md."""
    text = DOC.read_text() if doc is None else doc
    section = text.split("\n## Layers\n", 1)[1].split("\n## ", 1)[0]
    rows = [line for line in section.splitlines() if line.startswith("|")][2:]
    return [re.findall(r"`([\w.]+)`", row.split("|")[2]) for row in rows]


def unit_of(module: str) -> str | None:
    """``mnist_pipeline.registry.store`` → ``registry``; ``None`` outside the project."""
    parts = module.split(".")
    if parts[0] != PACKAGE:
        return None
    if len(parts) == 1:
        return PACKAGE
    if (SOURCE / parts[1]).is_dir() or (SOURCE / f"{parts[1]}.py").is_file():
        return parts[1].removesuffix(".py")
    return PACKAGE  # a name of the package's __init__ (``__version__``)


def _module_name(path: Path) -> tuple[str, bool]:
    rel = path.relative_to(SOURCE.parent).with_suffix("")
    is_package = rel.name == "__init__"
    parts = rel.parts[:-1] if is_package else rel.parts
    return ".".join(parts), is_package


def _targets(node: ast.Import | ast.ImportFrom, module: str, is_package: bool) -> list[str]:
    if isinstance(node, ast.Import):
        return [alias.name for alias in node.names]
    if node.level:
        package = module.split(".") if is_package else module.split(".")[:-1]
        base = package[: len(package) - node.level + 1]
        if node.module:
            return [".".join([*base, node.module])]
        return [".".join([*base, alias.name]) for alias in node.names]
    return [f"{node.module}.{alias.name}" for alias in node.names]


def _comment_above(lines: list[str], line: int) -> str:
    """The comment lines right above the run of import lines that ``line`` (1-based) is in."""
    above = []
    for text in reversed(lines[: line - 1]):
        stripped = text.strip()
        if stripped.startswith("#"):
            above.append(stripped)
        elif not stripped.startswith(("import ", "from ")):
            break
    return "\n".join(above)


def imports_of(path: Path) -> list[Import]:
    """Every import of project code in ``path`` that leaves its unit."""
    text = path.read_text()
    lines = text.splitlines()
    module, is_package = _module_name(path)
    source = unit_of(module)
    found: list[Import] = []

    def visit(node: ast.AST, in_function: bool) -> None:
        for child in ast.iter_child_nodes(node):
            if isinstance(child, (ast.Import, ast.ImportFrom)):
                line = child.lineno
                reason = LAZY.search(lines[line - 1]) or LAZY.search(_comment_above(lines, line))
                for target in {unit_of(name) for name in _targets(child, module, is_package)}:
                    if target is not None and target != source:
                        where = f"{path.relative_to(PROJECT_ROOT)}:{line}"
                        found.append(Import(source, target, where, in_function, bool(reason)))
            visit(child, in_function or isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef)))

    visit(ast.parse(text, str(path)), in_function=False)
    return found


def all_imports(root: Path = SOURCE) -> list[Import]:
    return [found for path in sorted(root.rglob("*.py")) for found in imports_of(path)]


def units(root: Path = SOURCE) -> set[str]:
    names = {p.name for p in root.iterdir() if p.is_dir() and (p / "__init__.py").is_file()}
    names |= {p.stem for p in root.glob("*.py") if p.name != "__init__.py"}
    return names | {PACKAGE}


def cycles(found: list[Import]) -> list[list[str]]:
    """Strongly connected components of more than one unit (Tarjan)."""
    graph: dict[str, set[str]] = {}
    for item in found:
        graph.setdefault(item.source, set()).add(item.target)
        graph.setdefault(item.target, set())
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    components: list[list[str]] = []

    def strong(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        for w in graph[v]:
            if w not in index:
                strong(w)
                low[v] = min(low[v], low[w])
            elif w in stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                components.append(sorted(component))

    for v in sorted(graph):
        if v not in index:
            strong(v)
    return components


def upward(found: list[Import], order: list[list[str]]) -> list[str]:
    """Imports of a unit in a higher layer than the importer's, as ``file:line: a -> b``."""
    level = {name: depth for depth, names in enumerate(order) for name in names}
    return [
        f"{item.where}: {item.source} (layer {level[item.source] + 1}) imports "
        f"{item.target} (layer {level[item.target] + 1})"
        for item in found
        if level[item.target] < level[item.source]
    ]


def unexplained_local(found: list[Import]) -> list[str]:
    return [
        f"{item.where}: function-local import of {item.target} without a `# lazy: <why>` comment"
        for item in found
        if item.local and not item.lazy_comment
    ]


# ---------------------------------------------------------------------------------------------


def test_every_unit_is_in_exactly_one_layer():
    listed = [name for layer in layers() for name in layer]
    assert len(listed) == len(set(listed)), "a unit is in two layers of docs/architecture.md"
    assert set(listed) == units(), (
        f"not in docs/architecture.md's Layers: {sorted(units() - set(listed))}; "
        f"listed but gone: {sorted(set(listed) - units())}"
    )


def test_no_import_cycle_between_units():
    found = all_imports()
    problems = [
        f"{item.where}: {item.source} imports {item.target} (cycle among {', '.join(cycle)})"
        for cycle in cycles(found)
        for item in found
        if item.source in cycle and item.target in cycle
    ]
    assert not problems, "\n".join(problems)


def test_imports_point_down_the_layers():
    problems = upward(all_imports(), layers())
    assert not problems, "\n".join(problems)


def test_function_local_imports_say_why():
    problems = unexplained_local(all_imports())
    assert not problems, "\n".join(problems)


# The checks themselves: each finds what it is for, on a planted package.


@pytest.fixture
def planted(tmp_path, monkeypatch):
    """A package ``mnist_pipeline`` with a low unit ``storage`` and a high one ``serving``."""
    root = tmp_path / PACKAGE
    (root / "serving").mkdir(parents=True)
    (root / "__init__.py").write_text("")
    (root / "serving" / "__init__.py").write_text("from mnist_pipeline.storage import read\n")
    (root / "storage.py").write_text("def read():\n    return 1\n")
    monkeypatch.setitem(globals(), "SOURCE", root)
    monkeypatch.setitem(globals(), "PROJECT_ROOT", tmp_path)
    return root


ORDER = [[PACKAGE, "serving"], ["storage"]]


def test_an_upward_import_is_named_with_its_line(planted):
    (planted / "storage.py").write_text("from .serving import app\n")
    problems = upward(all_imports(planted), ORDER)
    assert problems == [f"{PACKAGE}/storage.py:1: storage (layer 2) imports serving (layer 1)"]
    assert cycles(all_imports(planted)) == [["serving", "storage"]]


def test_a_function_local_import_needs_its_reason(planted):
    (planted / "serving" / "app.py").write_text(
        "def run():\n    from mnist_pipeline import storage\n\n"
        "def main():\n    # lazy: storage is slow to import\n    from .. import storage\n"
    )
    assert unexplained_local(all_imports(planted)) == [
        f"{PACKAGE}/serving/app.py:2: function-local import of storage without a "
        "`# lazy: <why>` comment"
    ]
    assert upward(all_imports(planted), ORDER) == []
