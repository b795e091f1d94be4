"""Dependency extras: what `pip install mnist-pipeline[<extra>]` pulls, resolved offline.

The closure is walked over the requirement metadata of the installed (lock-pinned)
distributions, starting from pyproject.toml's own lists, with markers evaluated for each
extra: the same graph pip resolves against requirements.lock, without any network.
"""

from __future__ import annotations

import importlib.metadata as md
import tomllib
from pathlib import Path

import pytest
from packaging.markers import default_environment
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

HEAVY = {"pyspark", "tensorflow", "tensorflow-cpu", "keras", "tensorboard", "kedro-viz"}


def _closure(project_root: Path, extras: set[str]) -> set[str]:
    project = tomllib.loads((project_root / "pyproject.toml").read_text())["project"]
    self_name = canonicalize_name(project["name"])
    pending: list[tuple[Requirement, set[str]]] = []

    def add(requirements: list[str], chosen: set[str]) -> None:
        for line in requirements:
            requirement = Requirement(line)
            environments = [default_environment() | {"extra": e} for e in (chosen or {""})]
            if requirement.marker and not any(requirement.marker.evaluate(e) for e in environments):
                continue
            pending.append((requirement, set(requirement.extras)))

    add(project["dependencies"], set())
    for extra in extras:
        add(project["optional-dependencies"][extra], {extra})
    seen: dict[str, set[str]] = {}
    while pending:
        requirement, chosen = pending.pop()
        name = canonicalize_name(requirement.name)
        if name == self_name:
            for extra in chosen:
                add(project["optional-dependencies"][extra], {extra})
            continue
        if name in seen and chosen <= seen[name]:
            continue
        seen[name] = seen.get(name, set()) | chosen
        try:
            requires = md.requires(requirement.name) or []
        except md.PackageNotFoundError:
            continue  # not installed: an optional extra nothing here uses
        add([r for r in requires if "extra ==" not in r or chosen], chosen)
    return set(seen)


def test_client_extra_pulls_no_tensorflow_or_spark(project_root):
    closure = _closure(project_root, {"client"})
    assert {"numpy", "pillow", "requests"} <= closure
    assert not closure & HEAVY, sorted(closure & HEAVY)


def test_core_leaves_spark_tensorflow_and_mlflow_pins_to_the_runtime(project_root):
    project = tomllib.loads((project_root / "pyproject.toml").read_text())["project"]
    core = {canonicalize_name(Requirement(r).name): Requirement(r) for r in project["dependencies"]}
    assert not set(core) & HEAVY
    assert str(core["mlflow"].specifier) in {">=3,<4", "<4,>=3"}  # a range, not a pin


@pytest.mark.parametrize("extra", ["local", "all"])
def test_laptop_extras_pull_the_whole_stack(project_root, extra):
    closure = _closure(project_root, {extra})
    assert {"pyspark", "tensorflow-cpu", "keras", "kedro-viz", "mlflow"} <= closure
