"""Offline checks of the Asset Bundle, as the Databricks CLI would see it (tests only).

:func:`load` merges ``databricks.yml`` with its ``include`` files; :func:`resolve_target`
fills in a target's variables and workspace paths as ``databricks bundle validate -o json``
would show them. On the resolved bundle: :func:`served_version_settings` (no second owner of
the served version), :func:`literal_secrets` (no literal token) and :func:`check_gpu_settings`
(the training task's cluster passes the runner's launch check,
:func:`mnist_pipeline.training.runner.check_launch`, from its specification alone). The CLI's
own rules are in :mod:`tests.databricks.cli_rules`; ``databricks bundle validate`` does the
rest in a workspace. The generator itself is :mod:`mnist_pipeline.databricks.bundle`.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import yaml

from mnist_pipeline.training.runner import check_launch

_REFERENCE = re.compile(r"\$\{([a-z_]+(?:\.[A-Za-z0-9_]+)+)\}")


def load(bundle_root: Path) -> dict[str, Any]:
    """``databricks.yml`` with its ``include`` files merged (targets and resources)."""
    root = yaml.safe_load((bundle_root / "databricks.yml").read_text())
    for pattern in root.get("include", []):
        for path in sorted(bundle_root.glob(pattern)):
            _merge(root, yaml.safe_load(path.read_text()) or {})
    return root


def _merge(into: dict[str, Any], other: Mapping[str, Any]) -> None:
    for key, value in other.items():
        if isinstance(value, Mapping) and isinstance(into.get(key), dict):
            _merge(into[key], value)
        else:
            into[key] = value


# Workspace paths the CLI derives from root_path when a target does not set them.
_DERIVED_PATHS = {
    "file_path": "files",
    "artifact_path": "artifacts",
    "state_path": "state",
    "resource_path": "resources",
}
# What one target's configuration is made of (targets.<name>.<key> overrides the top level).
_TARGET_KEYS = ("workspace", "run_as", "permissions", "presets", "resources")


def lookup_stand_in(kind: str, name: str) -> str:
    """Offline value of a ``lookup:`` variable: a stable UUID made from what it looks up.

    The CLI resolves ``lookup: {service_principal: <display name>}`` to the service
    principal's application ID (a UUID) in the workspace; this stands in for it here.
    """
    return str(uuid.uuid5(uuid.NAMESPACE_URL, f"databricks-lookup:{kind}:{name}"))


def _variable_value(name: str, spec: Any, target: str) -> Any:
    if not isinstance(spec, Mapping):  # targets.<t>.variables.<name>: <value>
        return spec
    if "lookup" in spec:
        ((kind, looked_up),) = dict(spec["lookup"]).items()
        return lookup_stand_in(kind, str(looked_up))
    if "default" in spec and spec["default"] is not None:
        return spec["default"]
    if "value" in spec:
        return spec["value"]
    raise KeyError(
        f"no value assigned to required variable {name} (target {target}): give it with "
        f"--var, BUNDLE_VAR_{name} or .databricks/bundle/{target}/variable-overrides.json"
    )


def resolve_target(
    bundle: Mapping[str, Any],
    target: str,
    overrides: Mapping[str, Any] | None = None,
    workspace: Mapping[str, str] | None = None,
) -> dict[str, Any]:
    """The target's configuration as ``databricks bundle validate -o json`` would show it.

    ``bundle`` (its name and target), ``workspace`` (host, root_path and the paths derived
    from it), ``run_as``, ``permissions``, ``presets``, ``variables`` (name → value) and
    ``resources``, with ``${var.*}``, ``${bundle.*}`` and ``${workspace.*}`` filled in.
    Variable values: ``overrides`` (``--var``) > the target's ``variables`` > the default; a
    ``lookup:`` variable gets :func:`lookup_stand_in`. ``${workspace.host}`` is what the
    target's ``workspace.host`` says, or empty: the CLI does not fill it in from a profile.
    ``workspace`` overrides workspace values (tests point ``file_path`` at a folder).

    Raises:
        KeyError: no such target, a reference to anything undefined, or a required variable
            without a value (the CLI refuses each).
    """
    if target not in bundle.get("targets", {}):
        raise KeyError(f"no target {target!r} in databricks.yml")
    target_config = bundle["targets"][target] or {}
    specs = dict(bundle.get("variables") or {})
    chosen = dict(target_config.get("variables") or {})
    values: dict[str, Any] = {}
    for name, spec in specs.items():
        if name in (overrides or {}):
            values[name] = overrides[name]  # type: ignore[index]
        elif name in chosen:
            values[name] = _variable_value(name, chosen[name], target)
        else:
            values[name] = _variable_value(name, spec, target)
    unknown = sorted(set(overrides or {}) - set(specs))
    if unknown:
        raise KeyError(f"variables {unknown} are not defined in databricks.yml")

    config: dict[str, Any] = {}
    for key in _TARGET_KEYS:
        merged: Any = bundle.get(key)
        if isinstance(merged, Mapping):
            merged = {**merged}
            _merge(merged, target_config.get(key) or {})
        elif key in target_config:
            merged = target_config[key]
        if merged is not None:
            config[key] = merged
    config["bundle"] = {**(bundle.get("bundle") or {}), "target": target}
    config["variables"] = values

    root = f"/Workspace/Users/<deploying identity>/.bundle/{config['bundle']['name']}/{target}"
    space = {"host": "", "root_path": root, **(config.get("workspace") or {})}
    for key, folder in _DERIVED_PATHS.items():
        space.setdefault(key, f"${{workspace.root_path}}/{folder}")
    space.update(workspace or {})
    config["workspace"] = space

    context = {"var": values, "bundle": config["bundle"], "workspace": space}

    def lookup(path: str) -> Any:
        value: Any = context
        for part in path.split("."):
            if not isinstance(value, Mapping) or part not in value:
                raise KeyError(f"${{{path}}} is not defined (target {target})")
            value = value[part]
        return value

    def fill(node: Any) -> Any:
        if isinstance(node, Mapping):
            return {key: fill(value) for key, value in node.items()}
        if isinstance(node, list):
            return [fill(value) for value in node]
        if isinstance(node, str):
            whole = _REFERENCE.fullmatch(node)
            if whole:
                return fill(lookup(whole.group(1)))
            return _REFERENCE.sub(lambda m: str(fill(lookup(m.group(1)))), node)
        return node

    # variables and workspace paths first (they may refer to each other), then the rest
    for name in list(values):
        values[name] = fill(values[name])
    for key in list(space):
        space[key] = fill(space[key])
    return {
        key: (value if key in ("variables", "workspace") else fill(value))
        for key, value in config.items()
    }


def resolve(
    bundle: Mapping[str, Any],
    target: str,
    overrides: Mapping[str, Any] | None = None,
    workspace: Mapping[str, str] | None = None,
) -> dict[str, Any]:
    """The target's resources, resolved (see :func:`resolve_target`)."""
    return resolve_target(bundle, target, overrides, workspace).get("resources") or {}


def served_version_settings(config: Mapping[str, Any]) -> list[str]:
    """Where a target's bundle configuration would set what a serving endpoint serves.

    ``bundle deploy`` applies every resource it declares, so anything listed here would be
    a second owner of the served version beside the deploy job (a redeploy would roll the
    endpoint back to it). The design's answer is an empty list: no
    ``model_serving_endpoints`` resource and no served entity/model anywhere.
    """
    found = [
        f"resources.model_serving_endpoints.{key}"
        for key in (config.get("resources") or {}).get("model_serving_endpoints") or {}
    ]
    served = {"served_entities", "served_models", "entity_version", "model_version"}
    for path, _ in _leaves(config.get("resources") or {}):
        parts = set(re.split(r"[.\[\]]", path))
        if parts & served:
            found.append(f"resources.{path}")
    return found


def _leaves(node: Any, path: str = "") -> Iterator[tuple[str, Any]]:
    if isinstance(node, Mapping):
        for key, value in node.items():
            yield from _leaves(value, f"{path}.{key}" if path else str(key))
    elif isinstance(node, list):
        for index, value in enumerate(node):
            yield from _leaves(value, f"{path}[{index}]")
    else:
        yield path, node


# Token-like: Databricks PATs, GitHub/Slack/AWS/Google keys, JWTs, long base64/hex runs.
TOKEN_PATTERNS = (
    re.compile(r"dapi[0-9a-f]{16,}"),
    re.compile(r"dose[0-9a-f]{16,}"),
    re.compile(r"gh[pousr]_[A-Za-z0-9]{20,}"),
    re.compile(r"xox[abpr]-[A-Za-z0-9-]{10,}"),
    re.compile(r"AKIA[0-9A-Z]{16}"),
    re.compile(r"AIza[0-9A-Za-z_-]{30,}"),
    re.compile(r"eyJ[A-Za-z0-9_-]{10,}\.[A-Za-z0-9_-]{10,}"),
    # a long run of letters *and* digits (a path's segments are checked one by one)
    re.compile(
        r"(?<![A-Za-z0-9_=+-])(?=[A-Za-z_=+-]*[0-9])(?=[0-9_=+-]*[A-Za-z])[A-Za-z0-9_=+-]{32,}"
    ),
)
SECRET_NAME = re.compile(r"(TOKEN|SECRET|PASSWORD|PASSWD|API_KEY|ACCESS_KEY|CLIENT_SECRET)", re.I)
SECRET_REFERENCE = re.compile(r"\{\{secrets/[^/{}]+/[^/{}]+\}\}")


def literal_secrets(
    texts: Mapping[str, str], resolved: Mapping[str, Any] | None = None
) -> list[str]:
    """Where a bundle holds a literal token: ``file: line`` of each token-like string, and
    every secret-named setting (``*TOKEN*``, ``*PASSWORD*``, ...) of ``resolved`` whose value
    is not a ``{{secrets/<scope>/<key>}}`` reference."""
    problems = []
    for name, text in texts.items():
        for number, line in enumerate(text.splitlines(), start=1):
            if line.lstrip().startswith("#"):
                continue
            for pattern in TOKEN_PATTERNS:
                if pattern.search(line):
                    problems.append(f"{name}:{number}: token-like string ({pattern.pattern[:20]}…)")
    for path, value in _leaves(resolved or {}):
        if not isinstance(value, str):
            continue
        key = path.rsplit(".", 1)[-1]
        if SECRET_NAME.search(key) and not SECRET_REFERENCE.fullmatch(value):
            problems.append(f"{path}: a secret must be a {{{{secrets/<scope>/<key>}}}} reference")
    return problems


def cluster_facts(cluster: Mapping[str, Any]) -> dict[str, Any]:
    """What the runner's launch check asks of a cluster, from a job cluster's specification:
    its Spark conf, and how many tasks run at once (``num_workers`` × executor GPUs / task
    GPUs, or × cores without GPUs)."""
    conf = {str(k): str(v) for k, v in (cluster.get("spark_conf") or {}).items()}
    workers = int(cluster.get("num_workers", 0))
    cores = int(cluster.get("_cores_per_worker", 4))
    gpus = float(conf.get("spark.executor.resource.gpu.amount", 0))
    task_gpus = float(conf.get("spark.task.resource.gpu.amount", 0))
    per_executor = int(gpus // task_gpus) if gpus and task_gpus else cores
    return {"spark_conf": conf, "slots": max(workers, 0) * min(per_executor, cores)}


def check_gpu_settings(job: Mapping[str, Any]) -> None:
    """Run the runner's fail-fast launch check against each training task's cluster.

    The training parameters are the job parameters' defaults; the cluster answers with its
    ``spark_conf`` and ``num_workers`` × (executor GPUs / task GPUs) slots.

    Raises:
        mnist_pipeline.training.runner.TrainingLaunchError: contradictory settings, e.g.
            ``use_gpu`` true without ``spark.task.resource.gpu.amount``, or more slots than
            the cluster's GPUs.
    """
    defaults = {p["name"]: p["default"] for p in job.get("parameters", [])}
    clusters = {c["job_cluster_key"]: c["new_cluster"] for c in job.get("job_clusters", [])}
    for task in job["tasks"]:
        arguments = task.get("python_wheel_task", {}).get("parameters", [])
        if "--params" not in arguments:
            continue
        params = task_params(arguments[arguments.index("--params") + 1], defaults)
        distribution = {
            "num_slots": params.get("training.distribution.num_slots", 1),
            "use_gpu": params.get("training.distribution.use_gpu", False),
            "slot_wait_s": 0,
        }
        facts = cluster_facts(clusters[task["job_cluster_key"]])
        check_launch(str(params.get("training.mode")), distribution, **facts)


def task_params(value: str, job_parameters: Mapping[str, Any]) -> dict[str, Any]:
    """``--params`` of a task with ``{{job.parameters.x}}`` filled in, YAML-typed like Kedro."""
    filled = re.sub(
        r"\{\{job\.parameters\.([A-Za-z0-9_]+)\}\}",
        lambda m: str(job_parameters[m.group(1)]),
        value,
    )
    out = {}
    for item in filled.split(","):
        key, _, raw = item.partition("=")
        out[key.strip()] = yaml.safe_load(raw)
    return out
