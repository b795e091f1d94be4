"""The Databricks CLI's bundle rules that this bundle depends on, mirrored in Python.

No CLI binary and no workspace are reachable here, so the rules `databricks bundle validate`
and `deploy` apply are re-stated from the CLI's Go source (github.com/databricks/cli, read at
commit 7bbe2852, v1.13.0, 2026-08-20). Each rule names the file it mirrors (``SOURCE``) and
reports what the CLI would, with the CLI's severity: ``error`` (validate/deploy fails),
``warning`` or ``recommendation`` (printed; the tests hold the bundle to none of them).

Every rule takes the bundle as loaded (``bundle_checks.load``: databricks.yml plus its includes, not
resolved), a target name and the identity that deploys (the CLI's current user), because
some rules are about the raw text (interpolation in auth fields) and some about the resolved
target (``bundle_checks.resolve_target``).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any

from tests.databricks import bundle_checks as checks

CLI_COMMIT = "7bbe2852131bc5c4a6c7bad5f147bc7772eedf9f"
_REFERENCE = re.compile(r"\$\{[^}]+\}")
_APPLICATION_ID = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$")


@dataclass(frozen=True)
class Diagnostic:
    severity: str  # error | warning | recommendation
    summary: str
    source: str  # the CLI file whose rule reported it


Rule = Callable[[Mapping[str, Any], str, str], list[Diagnostic]]
RULES: dict[str, Rule] = {}


def rule(source: str) -> Callable[[Callable[..., list[tuple[str, str]]]], Rule]:
    """Register a rule; it returns ``(severity, summary)`` pairs, tagged here with ``source``."""

    def register(check: Callable[..., list[tuple[str, str]]]) -> Rule:
        def run(bundle: Mapping[str, Any], target: str, deployer: str) -> list[Diagnostic]:
            return [Diagnostic(sev, text, source) for sev, text in check(bundle, target, deployer)]

        run.__doc__ = check.__doc__
        run.source = source  # type: ignore[attr-defined]
        RULES[check.__name__] = run
        return run

    return register


def _resolved(bundle: Mapping[str, Any], target: str) -> dict[str, Any]:
    return checks.resolve_target(bundle, target)


def _jobs(config: Mapping[str, Any]) -> Iterator[tuple[str, dict]]:
    yield from ((config.get("resources") or {}).get("jobs") or {}).items()


def _clusters(config: Mapping[str, Any]) -> Iterator[tuple[str, dict]]:
    for key, job in _jobs(config):
        for index, cluster in enumerate(job.get("job_clusters") or []):
            yield (
                f"resources.jobs.{key}.job_clusters[{index}].new_cluster",
                cluster.get("new_cluster") or {},
            )
        for index, task in enumerate(job.get("tasks") or []):
            if task.get("new_cluster"):
                yield f"resources.jobs.{key}.tasks[{index}].new_cluster", task["new_cluster"]


# ── bundle/config/mutator/resourcemutator/validate_target_mode.go ─────────────────────────────


@rule("bundle/config/mutator/resourcemutator/validate_target_mode.go")
def target_mode(bundle, target, deployer):
    """``mode`` is development or production; production needs the *target* to set
    ``workspace.root_path`` (an error, or a recommendation when every job has ``run_as`` or a
    service principal deploys) and no pipeline with ``development: true``."""
    raw_target = bundle["targets"][target] or {}
    mode = raw_target.get("mode", (bundle.get("bundle") or {}).get("mode", ""))
    if mode not in ("", "development", "production"):
        return [
            (
                "error",
                f"unsupported value '{mode}' specified for 'mode': must be either "
                "'development' or 'production'",
            )
        ]
    if mode != "production":
        return []
    config = _resolved(bundle, target)
    pipelines = (config.get("resources") or {}).get("pipelines") or {}
    if any(p.get("development") for p in pipelines.values()):
        return [
            (
                "error",
                "target with 'mode: production' cannot include a pipeline with 'development: true'",
            )
        ]
    # isExplicitRootSet: b.Target.Workspace.RootPath, the target's own setting
    if (raw_target.get("workspace") or {}).get("root_path"):
        return []
    jobs = [job for _, job in _jobs(config)]
    run_as_everywhere = all(job.get("run_as") or config.get("run_as") for job in jobs)
    advice = "set 'workspace.root_path' to make sure only one copy is deployed"
    if run_as_everywhere or _APPLICATION_ID.match(deployer):
        return [("recommendation", f"target with 'mode: production' should {advice}")]
    return [("error", f"target with 'mode: production' must {advice}")]


# ── bundle/config/mutator/resourcemutator/run_as.go ──────────────────────────────────────────


@rule("bundle/config/mutator/resourcemutator/run_as.go")
def run_as(bundle, target, deployer):
    """``run_as`` names exactly one identity; when it is not the deploying identity, the
    bundle may not hold model serving endpoints, quality monitors, apps or dashboards with
    embedded credentials (their APIs have no run_as)."""
    config = _resolved(bundle, target)
    if "run_as" not in config:
        return []
    spec = config["run_as"] or {}
    sp, user = spec.get("service_principal_name", ""), spec.get("user_name", "")
    if not sp and not user:
        return [
            (
                "error",
                "run_as section must specify exactly one identity. Neither "
                "service_principal_name nor user_name is specified",
            )
        ]
    found = []
    if sp and user:
        found.append(
            ("error", "run_as section cannot specify both user_name and service_principal_name")
        )
    identity = sp or user
    if identity == deployer:
        return found
    resources = config.get("resources") or {}
    unsupported = ["model_serving_endpoints", "quality_monitors", "apps"]
    for kind in unsupported:
        if resources.get(kind):
            found.append(
                (
                    "error",
                    f"{kind} do not support a setting a run_as user that is different from the "
                    f"owner. Current identity: {deployer}. Run as identity: {identity}.",
                )
            )
    for key, dashboard in (resources.get("dashboards") or {}).items():
        if dashboard.get("embed_credentials"):
            found.append(("error", f"dashboards with embed_credentials set to true ({key})"))
    return found


# ── bundle/config/validate/interpolation_in_auth_config.go ──────────────────────────────────

AUTH_FIELDS = (
    "host",
    "profile",
    "auth_type",
    "metadata_service_url",
    "client_id",
    "google_service_account",
    "azure_resource_id",
    "azure_use_msi",
    "azure_client_id",
    "azure_tenant_id",
    "azure_environment",
    "azure_login_app_id",
    "account_id",
    "workspace_id",
)


@rule("bundle/config/validate/interpolation_in_auth_config.go")
def auth_interpolation(bundle, target, deployer):
    """No variable reference in the fields that configure authentication (``workspace.host``
    and friends): the CLI builds its client before it resolves variables, so
    ``host: ${var.host}`` ends in ``parse "https://${var.host}": invalid character "{"``
    (acceptance/bundle/variables/host/output.txt, exit code 1)."""
    found = []
    for where, space in (
        ("workspace", bundle.get("workspace") or {}),
        (f"targets.{target}.workspace", (bundle["targets"][target] or {}).get("workspace") or {}),
    ):
        for field in AUTH_FIELDS:
            value = space.get(field)
            if isinstance(value, str) and _REFERENCE.search(value):
                found.append(
                    (
                        "warning",
                        f"Variable interpolation is not supported for fields that configure "
                        f"authentication: {where}.{field}",
                    )
                )
    return found


# ── ${workspace.host}: cmd/root/bundle.go, bundle/config/mutator/resolve_variable_references.go ─


@rule("bundle/config/mutator/resolve_variable_references.go")
def workspace_host_reference(bundle, target, deployer):
    """``${workspace.host}`` is the bundle's own ``workspace.host``: the CLI never fills it in
    from a profile or ``DATABRICKS_HOST`` (cmd/root/bundle.go only configures its client;
    acceptance/auth/bundle_default_profile shows ``"host": null``), and an unset field
    resolves to its zero value, an empty string. A reference needs the target to set it."""
    raw_target = bundle["targets"][target] or {}
    host = (raw_target.get("workspace") or {}).get("host") or (bundle.get("workspace") or {}).get(
        "host"
    )
    if host:
        return []
    texts = list(_strings({k: v for k, v in bundle.items() if k != "targets"}))
    texts += list(_strings(raw_target))
    if any("${workspace.host}" in text for text in texts):
        return [
            (
                "error",
                f"${{workspace.host}} is referenced but target {target} sets no workspace.host: "
                "it resolves to an empty string",
            )
        ]
    return []


def _strings(node: Any) -> Iterator[str]:
    if isinstance(node, Mapping):
        for value in node.values():
            yield from _strings(value)
    elif isinstance(node, list):
        for value in node:
            yield from _strings(value)
    elif isinstance(node, str):
        yield node


# ── bundle/config/mutator/set_variables.go ──────────────────────────────────────────────────


@rule("bundle/config/mutator/set_variables.go")
def variables_have_values(bundle, target, deployer):
    """Every variable gets a value (a default, the target's, ``--var``, a lookup); a
    reference to an undefined variable fails (resolve_variable_references.go)."""
    try:
        _resolved(bundle, target)
    except KeyError as exc:
        return [("error", str(exc).strip("'\""))]
    return []


# ── bundle/config/validate/job_cluster_key_defined.go ────────────────────────────────────────


@rule("bundle/config/validate/job_cluster_key_defined.go")
def job_cluster_key_defined(bundle, target, deployer):
    """Each task's ``job_cluster_key`` is one of the job's ``job_clusters``."""
    found = []
    for key, job in _jobs(_resolved(bundle, target)):
        defined = {c.get("job_cluster_key") for c in job.get("job_clusters") or []}
        for index, task in enumerate(job.get("tasks") or []):
            wanted = task.get("job_cluster_key")
            if wanted and wanted not in defined:
                found.append(
                    (
                        "warning",
                        f"job_cluster_key {wanted} is not defined "
                        f"(resources.jobs.{key}.tasks[{index}])",
                    )
                )
    return found


# ── bundle/config/validate/job_task_cluster_spec.go ─────────────────────────────────────────

COMPUTE_TASKS = (
    "python_wheel_task",
    "dbt_task",
    "spark_jar_task",
    "spark_submit_task",
    "spark_python_task",
)


@rule("bundle/config/validate/job_task_cluster_spec.go")
def task_has_compute(bundle, target, deployer):
    """A task that runs code (a wheel task here) names a job cluster, an environment, an
    existing cluster or a new cluster."""
    found = []
    for key, job in _jobs(_resolved(bundle, target)):
        for task in job.get("tasks") or []:
            if not any(task.get(kind) for kind in COMPUTE_TASKS):
                continue
            compute = ("job_cluster_key", "environment_key", "existing_cluster_id", "new_cluster")
            if not any(task.get(field) for field in compute):
                found.append(
                    (
                        "error",
                        f"Missing required cluster or environment settings: task "
                        f"{task.get('task_key')!r} of job {key}",
                    )
                )
    return found


# ── bundle/config/validate/single_node_cluster.go ───────────────────────────────────────────


@rule("bundle/config/validate/single_node_cluster.go")
def single_node_cluster(bundle, target, deployer):
    """``num_workers: 0`` only with the single-node profile, a local master and the
    ``ResourceClass: SingleNode`` tag (or ``is_single_node``, or a cluster policy)."""
    found = []
    for path, cluster in _clusters(_resolved(bundle, target)):
        if "num_workers" not in cluster or int(cluster["num_workers"]) > 0:
            continue
        if cluster.get("is_single_node") or cluster.get("policy_id"):
            continue
        conf = cluster.get("spark_conf") or {}
        tags = cluster.get("custom_tags") or {}
        if (
            conf.get("spark.databricks.cluster.profile") != "singleNode"
            or not str(conf.get("spark.master", "")).startswith("local")
            or tags.get("ResourceClass") != "SingleNode"
        ):
            found.append(("warning", f"Single node cluster is not correctly configured: {path}"))
    return found


# ── bundle/config/validate/validate_volume_path.go ─────────────────────────────────────────


@rule("bundle/config/validate/validate_volume_path.go")
def workspace_paths_not_in_volumes(bundle, target, deployer):
    """root_path, file_path, state_path and resource_path may not be in /Volumes (only
    artifact_path may)."""
    space = _resolved(bundle, target)["workspace"]
    found = []
    for key in ("root_path", "file_path", "state_path", "resource_path"):
        if str(space.get(key, "")).startswith("/Volumes/"):
            found.append(("error", f"workspace.{key} {space[key]} starts with /Volumes"))
            if key == "root_path":
                break  # the CLI returns early for root_path (the others derive from it)
    return found


# ── bundle/permissions/validate.go ─────────────────────────────────────────────────────────


@rule("bundle/permissions/validate.go")
def shared_root(bundle, target, deployer):
    """A root_path in /Workspace/Shared/ is writable by every workspace user: the CLI warns
    unless the bundle grants ``users`` CAN_MANAGE on purpose."""
    config = _resolved(bundle, target)
    if not str(config["workspace"]["root_path"]).startswith("/Workspace/Shared/"):
        return []
    everyone = any(
        p.get("group_name") == "users" and p.get("level") == "CAN_MANAGE"
        for p in config.get("permissions") or []
    )
    if everyone:
        return []
    return [
        (
            "warning",
            f"the bundle root path {config['workspace']['root_path']} is writable by all "
            "workspace users",
        )
    ]


# ── bundle/config/mutator/resourcemutator/apply_bundle_permissions.go ───────────────────────


@rule("bundle/config/mutator/resourcemutator/apply_bundle_permissions.go")
def permission_levels(bundle, target, deployer):
    """Top-level permissions use CAN_MANAGE, CAN_VIEW or CAN_RUN, each for one principal."""
    found = []
    for permission in _resolved(bundle, target).get("permissions") or []:
        level = permission.get("level")
        if level not in ("CAN_MANAGE", "CAN_VIEW", "CAN_RUN"):
            found.append(
                (
                    "error",
                    f"invalid permission level: {level}, allowed values: "
                    "[CAN_MANAGE, CAN_VIEW, CAN_RUN]",
                )
            )
        who = [
            k for k in ("user_name", "group_name", "service_principal_name") if permission.get(k)
        ]
        if len(who) != 1:
            found.append(("error", f"a permission names one principal, got {who}: {permission}"))
    return found


# ── bundle/permissions/permission_diagnostics.go ────────────────────────────────────────────


@rule("bundle/permissions/permission_diagnostics.go")
def deployer_can_manage(bundle, target, deployer):
    """With a top-level ``permissions`` section, the deploying identity should be in it
    with CAN_MANAGE (otherwise CAN_MANAGE is only applied while that identity deploys).
    Group membership cannot be known offline: only a direct entry counts here."""
    permissions = _resolved(bundle, target).get("permissions") or []
    if not permissions:
        return []
    direct = any(
        p.get("level") == "CAN_MANAGE"
        and deployer in (p.get("user_name"), p.get("service_principal_name"))
        for p in permissions
    )
    if direct:
        return []
    return [
        (
            "recommendation",
            f"permissions section should explicitly include the current deployment identity "
            f"'{deployer}' or one of its groups",
        )
    ]


# ── bundle/config/validate/no_interpolation_in_bundle_name.go ───────────────────────────────


@rule("bundle/config/validate/no_interpolation_in_bundle_name.go")
def bundle_name_is_literal(bundle, target, deployer):
    """The bundle's name is part of its state path: no variables in it."""
    name = str((bundle.get("bundle") or {}).get("name", ""))
    if _REFERENCE.search(name):
        return [("warning", "Please do not use variable interpolation in the name of your bundle")]
    return []


# ── bundle/config/validate/unique_resource_keys.go ─────────────────────────────────────────


@rule("bundle/config/validate/unique_resource_keys.go")
def unique_resource_keys(bundle, target, deployer):
    """A resource key is unique across all resource types of the target."""
    seen: dict[str, str] = {}
    found = []
    for kind, items in (_resolved(bundle, target).get("resources") or {}).items():
        for key in items or {}:
            if key in seen:
                found.append(
                    ("error", f"multiple resources have been defined with the same key: {key}")
                )
            seen[key] = kind
    return found


# ── bundle/config/mutator/select_default_target.go ──────────────────────────────────────────


@rule("bundle/config/mutator/select_default_target.go")
def one_default_target(bundle, target, deployer):
    """At most one target is ``default: true``."""
    defaults = sorted(name for name, t in bundle["targets"].items() if (t or {}).get("default"))
    if len(defaults) > 1:
        return [("error", f"multiple targets are marked as default ({', '.join(defaults)})")]
    return []


# ── bundle/config/mutator/verify_cli_version.go ─────────────────────────────────────────────

_VERSION = r"(\d+\.\d+\.\d+(\-\w+)?|\d+\.\d+.\*|\d+\.\*)"
_OPERATOR = r"(>=|<=|>|<|!=)?"
_CONSTRAINT = re.compile(rf"^{_OPERATOR} ?{_VERSION}(, {_OPERATOR} {_VERSION})?$")


@rule("bundle/config/mutator/verify_cli_version.go")
def cli_version_constraint(bundle, target, deployer):
    """``bundle.databricks_cli_version`` is in the syntax the CLI accepts."""
    constraint = (bundle.get("bundle") or {}).get("databricks_cli_version")
    if constraint and not _CONSTRAINT.match(constraint):
        return [("error", f"invalid version constraint {constraint!r} specified")]
    return []


def check(bundle: Mapping[str, Any], target: str, deployer: str) -> list[Diagnostic]:
    """Every rule above on one target."""
    return [d for run in RULES.values() for d in run(bundle, target, deployer)]
