"""The bundle against the Databricks CLI's own rules (tests/databricks/cli_rules.py).

Each target passes every rule with no diagnostic at all (not even a warning or a
recommendation) when its service principal deploys it, as docs/databricks.md says to; and
each rule is shown to catch the mistake it exists for, on a copy of the bundle with that
mistake made.
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from pathlib import Path

import pytest

from mnist_pipeline.databricks import bundle as b
from tests.databricks import bundle_checks as checks
from tests.databricks import cli_rules

TARGETS = ("azure", "gcp")
HUMAN = "someone@example.com"


@pytest.fixture(scope="module")
def loaded(project_root: Path) -> dict:
    return checks.load(project_root)


def _principal(bundle: dict, target: str) -> str:
    return checks.resolve_target(bundle, target)["run_as"]["service_principal_name"]


@pytest.mark.parametrize("target", TARGETS)
def test_each_target_passes_every_cli_rule(loaded, target):
    diagnostics = cli_rules.check(loaded, target, deployer=_principal(loaded, target))
    assert diagnostics == []
    # every rule names the CLI source file it mirrors
    assert all(run.source.startswith("bundle/") for run in cli_rules.RULES.values())
    assert all(run.source.endswith(".go") for run in cli_rules.RULES.values())


@pytest.mark.parametrize("target", TARGETS)
def test_a_human_deployer_is_not_refused(loaded, target):
    """No resource that run_as.go refuses for a run_as other than the deployer (the serving
    endpoint is not a bundle resource); the only advice is to deploy as the principal."""
    diagnostics = cli_rules.check(loaded, target, deployer=HUMAN)
    assert [d.severity for d in diagnostics] == ["recommendation"]
    assert diagnostics[0].source == "bundle/permissions/permission_diagnostics.go"


def _gcp(bundle: dict) -> dict:
    return bundle["targets"]["gcp"]


def _deploy_job(bundle: dict) -> dict:
    return _gcp(bundle)["resources"]["jobs"][b.DEPLOY_JOB]


def _no_root_path(bundle: dict) -> None:
    del _gcp(bundle)["workspace"]["root_path"]
    del _gcp(bundle)["run_as"]


def _root_path_at_top_level_only(bundle: dict) -> None:
    bundle["workspace"] = {"root_path": _gcp(bundle)["workspace"].pop("root_path")}


def _endpoint_resource(bundle: dict) -> None:
    _gcp(bundle)["resources"]["model_serving_endpoints"] = {
        "mnist_cnn": {
            "name": "${var.endpoint_name}",
            "config": {
                "served_entities": [
                    {"entity_name": "${var.production_model_name}", "entity_version": "1"}
                ]
            },
        }
    }


def _host_from_variable(bundle: dict) -> None:
    bundle["variables"]["production_host"] = {"default": "https://x.gcp.databricks.com"}
    _gcp(bundle)["workspace"]["host"] = "${var.production_host}"


def _no_host(bundle: dict) -> None:
    del _gcp(bundle)["workspace"]["host"]


def _required_variable_unset(bundle: dict) -> None:
    del bundle["variables"]["endpoint_name"]["default"]


def _undefined_variable(bundle: dict) -> None:
    _deploy_job(bundle)["tasks"][1]["python_wheel_task"]["parameters"][2] = "${var.endpoint}"


def _wrong_cluster_key(bundle: dict) -> None:
    _deploy_job(bundle)["tasks"][0]["job_cluster_key"] = "gpu_cluster"


def _no_compute(bundle: dict) -> None:
    del _deploy_job(bundle)["tasks"][2]["job_cluster_key"]


def _single_node_untagged(bundle: dict) -> None:
    del _deploy_job(bundle)["job_clusters"][0]["new_cluster"]["custom_tags"]


def _root_in_volume(bundle: dict) -> None:
    _gcp(bundle)["workspace"]["root_path"] = "/Volumes/prod/ml/mnist_pipeline/.bundle"


def _root_in_shared(bundle: dict) -> None:
    _gcp(bundle)["workspace"]["root_path"] = "/Workspace/Shared/.bundle/${bundle.name}"


def _bad_permission_level(bundle: dict) -> None:
    bundle["permissions"][2]["level"] = "CAN_QUERY"


def _principal_not_in_permissions(bundle: dict) -> None:
    del bundle["permissions"][0]


def _name_from_variable(bundle: dict) -> None:
    bundle["bundle"]["name"] = "mnist-${var.model}"


def _duplicate_key(bundle: dict) -> None:
    _gcp(bundle)["resources"]["experiments"] = {b.DEPLOY_JOB: {"name": "/Shared/x"}}


def _two_defaults(bundle: dict) -> None:
    _gcp(bundle)["default"] = True


def _bad_cli_version(bundle: dict) -> None:
    bundle["bundle"]["databricks_cli_version"] = ">=0.267"


def _bad_mode(bundle: dict) -> None:
    _gcp(bundle)["mode"] = "prod"


MISTAKES: list[tuple[str, Callable[[dict], None], str, str, str]] = [
    # rule, mistake, deployer ("human" or "principal"), severity, words of the summary
    ("target_mode", _no_root_path, "human", "error", "must set 'workspace.root_path'"),
    ("target_mode", _root_path_at_top_level_only, "human", "recommendation", "should set"),
    ("target_mode", _bad_mode, "human", "error", "unsupported value 'prod'"),
    ("run_as", _endpoint_resource, "human", "error", "model_serving_endpoints do not support"),
    ("auth_interpolation", _host_from_variable, "principal", "warning", "workspace.host"),
    ("workspace_host_reference", _no_host, "principal", "error", "resolves to an empty string"),
    ("variables_have_values", _required_variable_unset, "principal", "error", "endpoint_name"),
    ("variables_have_values", _undefined_variable, "principal", "error", "var.endpoint"),
    ("job_cluster_key_defined", _wrong_cluster_key, "principal", "warning", "gpu_cluster"),
    ("task_has_compute", _no_compute, "principal", "error", "'smoke_test'"),
    ("single_node_cluster", _single_node_untagged, "principal", "warning", "Single node"),
    ("workspace_paths_not_in_volumes", _root_in_volume, "principal", "error", "/Volumes"),
    ("shared_root", _root_in_shared, "principal", "warning", "writable by all"),
    ("permission_levels", _bad_permission_level, "principal", "error", "CAN_QUERY"),
    ("deployer_can_manage", _principal_not_in_permissions, "principal", "recommendation", "'"),
    ("bundle_name_is_literal", _name_from_variable, "principal", "warning", "interpolation"),
    ("unique_resource_keys", _duplicate_key, "principal", "error", b.DEPLOY_JOB),
    ("one_default_target", _two_defaults, "principal", "error", "azure, gcp"),
    ("cli_version_constraint", _bad_cli_version, "principal", "error", ">=0.267"),
]


@pytest.mark.parametrize(
    "case", MISTAKES, ids=[f"{m[0]}-{m[1].__name__.strip('_')}" for m in MISTAKES]
)
def test_each_rule_catches_its_mistake(loaded, case):
    rule, mistake, deployer, severity, words = case
    principal = _principal(loaded, "gcp")
    assert cli_rules.RULES[rule](loaded, "gcp", principal) == []  # the bundle as it is
    broken = copy.deepcopy(loaded)
    mistake(broken)
    who = HUMAN if deployer == "human" else principal
    diagnostics = cli_rules.RULES[rule](broken, "gcp", who)
    assert [d.severity for d in diagnostics] == [severity], diagnostics
    assert words in diagnostics[0].summary


def test_every_rule_is_exercised_by_a_mistake():
    assert {m[0] for m in MISTAKES} == set(cli_rules.RULES)


def test_an_endpoint_resource_is_allowed_only_when_its_run_as_deploys(loaded):
    """Why the endpoint is not a bundle resource: with one, only the run_as principal itself
    could deploy the production target (run_as.go), and the resource would carry a version."""
    broken = copy.deepcopy(loaded)
    _endpoint_resource(broken)
    principal = _principal(broken, "gcp")
    assert cli_rules.RULES["run_as"](broken, "gcp", principal) == []
    assert cli_rules.RULES["run_as"](broken, "gcp", HUMAN) != []
    assert checks.served_version_settings(checks.resolve_target(broken, "gcp")) == [
        "resources.model_serving_endpoints.mnist_cnn",
        "resources.model_serving_endpoints.mnist_cnn.config.served_entities[0].entity_name",
        "resources.model_serving_endpoints.mnist_cnn.config.served_entities[0].entity_version",
    ]
