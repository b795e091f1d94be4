"""The Asset Bundle (databricks.yml + resources/), checked offline.

Typed resources of the `databricks-bundles` package refuse unknown or misspelt fields and
enum values; the task list, flags, entry points, secrets, GPU settings, Unity Catalog objects,
identities, schedules and notifications are checked against the project. The CLI's own rules
are in test_cli_rules.py.
"""

from __future__ import annotations

import copy
import os
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest
import yaml
from databricks.bundles.experiments import MlflowExperiment
from databricks.bundles.jobs import Job
from databricks.bundles.registered_models import RegisteredModel
from databricks.bundles.schemas import Schema
from databricks.bundles.volumes import Volume

from mnist_pipeline.databricks import bundle as b
from mnist_pipeline.pipeline_registry import SANDBOX_STAGES
from mnist_pipeline.registry.config import (
    RegistryConfigError,
    Workspace,
    is_unity_catalog,
    validate_model_name,
)
from mnist_pipeline.training.runner import TrainingLaunchError
from tests.databricks import bundle_checks as checks

TYPED = {
    "jobs": Job,
    "schemas": Schema,
    "volumes": Volume,
    "registered_models": RegisteredModel,
    "experiments": MlflowExperiment,
}


@pytest.fixture(scope="module")
def loaded(project_root: Path) -> dict:
    return checks.load(project_root)


@pytest.fixture(scope="module")
def azure(loaded) -> dict:
    return checks.resolve(loaded, "azure")


@pytest.fixture(scope="module")
def gcp(loaded) -> dict:
    return checks.resolve(loaded, "gcp")


def _params(task: dict) -> list[str]:
    return task["python_wheel_task"]["parameters"]


def _env(target: dict, job: str) -> dict[str, str]:
    return target["jobs"][job]["job_clusters"][0]["new_cluster"]["spark_env_vars"]


def _argument(task: dict, flag: str) -> str:
    params = _params(task)
    return params[params.index(flag) + 1]


def test_targets_hold_their_own_resources(azure, gcp):
    data = {"schemas": {b.SCHEMA}, "volumes": {b.VOLUME}, "registered_models": {b.MODEL}}
    assert {kind: set(items) for kind, items in azure.items()} == {
        "jobs": {b.SANDBOX_JOB},
        "experiments": {"mnist_sandbox_experiment"},
        **data,
    }
    assert {kind: set(items) for kind, items in gcp.items()} == {
        "jobs": {b.DEPLOY_JOB, b.BATCH_SCORING_JOB, b.MONITORING_JOB},
        "experiments": {"mnist_production_experiment", "mnist_promotion_experiment"},
        **data,
    }


def test_resources_parse_into_typed_bundle_resources(azure, gcp):
    for target in (azure, gcp):
        for kind, items in target.items():
            for body in items.values():
                assert TYPED[kind].from_dict(copy.deepcopy(body))
    # the typed classes do refuse what the CLI would refuse: a misspelt field, a bad enum
    bad = copy.deepcopy(azure["jobs"][b.SANDBOX_JOB])
    bad["tasks"][0]["task_kee"] = bad["tasks"][0].pop("task_key")
    with pytest.raises(ValueError, match="task_kee"):
        Job.from_dict(bad)
    bad = copy.deepcopy(gcp["volumes"][b.VOLUME])
    bad["grants"][0]["privileges"] = ["READ_VOLUMES"]
    with pytest.raises(ValueError, match="READ_VOLUMES"):
        Volume.from_dict(bad)
    bad = copy.deepcopy(gcp["jobs"][b.DEPLOY_JOB])
    bad["job_clusters"][0]["new_cluster"]["data_security_mode"] = "SINGLE_USR"
    with pytest.raises(ValueError, match="SINGLE_USR"):
        Job.from_dict(bad)


def test_sandbox_job_runs_one_task_per_stage_in_order_with_pipelines_flag(azure):
    job = azure["jobs"][b.SANDBOX_JOB]
    tasks = job["tasks"]
    assert [t["task_key"] for t in tasks] == list(SANDBOX_STAGES)
    for previous, task in zip([None, *tasks], tasks, strict=False):
        params = _params(task)
        assert params[:4] == ["--env", "azure", "--pipelines", task["task_key"]]
        assert "--pipeline" not in params
        assert params[params.index("--conf-source") + 1].endswith(
            "/dist/conf-mnist_pipeline.tar.gz"
        )
        if previous is not None:
            assert task["depends_on"] == [{"task_key": previous["task_key"]}]
    training = next(t for t in tasks if t["task_key"] == "training")
    params = checks.task_params(
        _params(training)[-1], {p["name"]: p["default"] for p in job["parameters"]}
    )
    assert params == {
        "training.mode": "distributed",
        "training.distribution.use_gpu": True,
        "training.distribution.num_slots": 2,
        "training.epochs": 4,
        "training.batch_size": 128,
    }


def test_deploy_job_validates_then_serves_then_smoke_tests(gcp):
    tasks = gcp["jobs"][b.DEPLOY_JOB]["tasks"]
    assert [t["task_key"] for t in tasks] == ["validate", "update_endpoint", "smoke_test"]
    assert _params(tasks[0])[:4] == ["--env", "gcp", "--pipelines", "deploy"]
    assert _params(tasks[1])[0] == "update-endpoint" and tasks[1]["depends_on"] == [
        {"task_key": "validate"}
    ]
    assert _params(tasks[2])[0] == "smoke-test" and tasks[2]["depends_on"] == [
        {"task_key": "update_endpoint"}
    ]
    assert _argument(tasks[1], "--endpoint") == _argument(tasks[2], "--endpoint") == "mnist-cnn"
    assert _argument(tasks[1], "--model-name") == "prod.ml.mnist_cnn"
    assert _argument(tasks[1], "--alias") == "production"


def test_bundle_deploy_cannot_change_the_served_version(loaded, gcp):
    """The deploy job is the served version's only owner.

    `bundle deploy` applies what the bundle declares; no target declares a serving endpoint
    or anything else that names a served entity or version, so a redeploy of the production
    target has nothing with which to move (or roll back) the endpoint. The job's task takes
    no version: it resolves @production when it runs.
    """
    for target in ("azure", "gcp"):
        assert checks.served_version_settings(checks.resolve_target(loaded, target)) == []
    (update,) = [
        t for t in gcp["jobs"][b.DEPLOY_JOB]["tasks"] if t["task_key"] == "update_endpoint"
    ]
    assert not {"--version", "--model-version", "--entity-version"} & set(_params(update))
    assert "model_version" not in loaded["variables"]  # the old second owner
    # test_cli_rules.py shows the check finding the version of an endpoint resource


def test_endpoint_sizing_and_access_reach_the_update_step_as_configured(loaded, gcp):
    """The bundle's serving variables parse into a valid sizing, per target override too."""
    from mnist_pipeline.databricks.__main__ import parser
    from mnist_pipeline.databricks.endpoint import EndpointUpdateError, Sizing

    def sizing(target: dict) -> tuple[Sizing, object]:
        task = target["jobs"][b.DEPLOY_JOB]["tasks"][1]
        args = parser().parse_args(_params(task))
        built = Sizing(
            workload_type=args.workload_type,
            workload_size=args.workload_size,
            scale_to_zero=args.scale_to_zero,
            min_concurrency=args.min_concurrency,
            max_concurrency=args.max_concurrency,
        )
        return built, args

    default, args = sizing(gcp)
    assert default == Sizing("CPU", "Small", True, None, None)
    assert args.query_group == ("mnist-pipeline-readers",)
    assert args.manage_group == ("mnist-pipeline-admins",)
    bounds = {
        "serving_workload_size": "none",
        "serving_min_concurrency": "4",
        "serving_max_concurrency": "16",
        "serving_scale_to_zero": "false",
    }
    sized, _ = sizing(checks.resolve(loaded, "gcp", bounds))
    assert (sized.workload_size, sized.min_concurrency, sized.max_concurrency) == (None, 4, 16)
    both = bounds | {"serving_workload_size": "Small"}
    with pytest.raises(EndpointUpdateError, match="one or the other"):
        sizing(checks.resolve(loaded, "gcp", both))


def test_every_task_names_an_existing_pipeline_env_and_entry_point(azure, gcp, project_root):
    from kedro.framework.project import pipelines
    from kedro.framework.startup import bootstrap_project

    from mnist_pipeline.databricks.__main__ import parser

    bootstrap_project(project_root)
    scripts = tomllib.loads((project_root / "pyproject.toml").read_text())["project"]["scripts"]
    subcommands = set(parser()._subparsers._group_actions[0].choices)
    for target in (azure, gcp):
        for job in target["jobs"].values():
            for task in job["tasks"]:
                wheel_task = task["python_wheel_task"]
                assert wheel_task["package_name"] == "mnist_pipeline"
                assert wheel_task["entry_point"] in scripts, wheel_task
                params = _params(task)
                if wheel_task["entry_point"] == b.ENTRY_POINT:
                    env = params[params.index("--env") + 1]
                    assert (project_root / "conf" / env).is_dir(), env
                    assert params[params.index("--pipelines") + 1] in pipelines
                else:
                    assert params[0] in subcommands
                    parser().parse_args(params)  # exits (SystemExit 2) on a wrong argument
                # the clusters' lock first, then the wheel (libraries install in order)
                lock, wheel = task["libraries"]
                assert lock["requirements"].endswith("/files/requirements-databricks.txt")
                assert (project_root / "requirements-databricks.txt").is_file()
                assert wheel == {"whl": "../dist/*.whl"}


def test_secrets_are_references_and_scope_names_are_the_cases(loaded, azure, gcp):
    env = _env(azure, b.SANDBOX_JOB)
    assert env["MLFLOW_PRODUCTION_TRACKING_URI"] == "databricks://data_masters:data_master_sandbox"
    assert (
        env["MLFLOW_PRODUCTION_REGISTRY_URI"] == "databricks-uc://data_masters:data_master_sandbox"
    )
    assert loaded["variables"]["secret_scope"]["default"] == "data_masters"
    # production holds no credential at all: its jobs authenticate as their run-as principal
    for job in gcp["jobs"]:
        assert not {k for k in _env(gcp, job) if checks.SECRET_NAME.search(k)}, job
    assert checks.literal_secrets({}, azure) == [] and checks.literal_secrets({}, gcp) == []


def _workspaces_of(job: dict, env: str, project_root: Path, monkeypatch) -> dict[str, Workspace]:
    """The MLflow workspaces a task of ``job`` reaches: its cluster's environment variables,
    read by the project's own configuration for ``--env <env>`` as the task runs it."""
    from kedro.config import OmegaConfigLoader

    from mnist_pipeline.settings import CONFIG_LOADER_ARGS

    with monkeypatch.context() as patch:
        for name in list(os.environ):
            if name.startswith(("MLFLOW_", "MNIST_", "DATABRICKS_")):
                patch.delenv(name)
        for name, value in job["job_clusters"][0]["new_cluster"]["spark_env_vars"].items():
            patch.setenv(name, str(value))
        loader = OmegaConfigLoader(str(project_root / "conf"), env=env, **CONFIG_LOADER_ARGS)
        stores, params = loader["globals"]["mlflow_stores"], loader["parameters"]
    if env == b.SANDBOX_ENV:
        promotion = params["promotion"]
        sandbox = {**stores["sandbox"], "model_name": promotion["model_name"]}
        return {
            "sandbox": Workspace.from_config("sandbox", {**sandbox, "alias": "champion"}),
            "production": Workspace.from_config("production", promotion["production"]),
        }
    deploy = params["deploy_model"]
    production = {**stores["production"], "model_name": deploy["name"], "alias": deploy["alias"]}
    assert deploy["registry_uri"] == stores["production"]["registry_uri"]
    return {"production": Workspace.from_config("production", production)}


@pytest.mark.parametrize("target", ["azure", "gcp"])
def test_each_jobs_environment_gives_the_workspaces_its_tasks_reach(
    loaded, target, project_root, monkeypatch
):
    """Read as the tasks read it (`--env azure|gcp`), a job's cluster environment gives
    workspaces the project accepts: Unity Catalog registries, tracking in the job's own
    workspace (its run-as identity, no credential), and the sandbox reaching production
    through the secret scope, registry and tracking alike."""
    for name, job in checks.resolve(loaded, target)["jobs"].items():
        reached = _workspaces_of(job, target, project_root, monkeypatch)
        for workspace in reached.values():
            assert is_unity_catalog(workspace.registry_uri), (name, workspace)
        own = reached["sandbox" if target == "azure" else "production"]
        assert own.tracking_uri == "databricks", name
        if target == "azure":
            production = reached["production"]
            scope = "data_masters:data_master_sandbox"
            assert production.tracking_uri == f"databricks://{scope}"
            assert production.registry_uri == f"databricks-uc://{scope}"
        for task in job["tasks"]:
            if _params(task)[0] == "update-endpoint":  # the alias resolves where it deployed
                assert _argument(task, "--registry-uri") == own.registry_uri
                assert _argument(task, "--model-name") == own.model_name


def test_a_literal_token_anywhere_in_the_bundle_is_found(project_root, azure):
    texts = {
        p.name: p.read_text()
        for p in [
            project_root / "databricks.yml",
            *sorted((project_root / "resources").glob("*.yml")),
        ]
    }
    assert checks.literal_secrets(texts, azure) == []
    fake = "dapi" + "0123456789abcdef" * 2
    planted = dict(texts)
    planted["sandbox_job.yml"] = texts["sandbox_job.yml"].replace(
        "databricks://${var.secret_scope}:${var.secret_key}", fake, 1
    )
    assert any(p.startswith("sandbox_job.yml:") for p in checks.literal_secrets(planted))
    leaked = copy.deepcopy(azure)
    _env(leaked, b.SANDBOX_JOB)["DATABRICKS_TOKEN"] = "hunter2"
    assert any("DATABRICKS_TOKEN" in p for p in checks.literal_secrets({}, leaked))


def test_gpu_settings_agree_with_the_runners_fail_fast_check(loaded):
    checks.check_gpu_settings(checks.resolve(loaded, "azure")["jobs"][b.SANDBOX_JOB])
    # use_gpu without the GPU resource amount: the runner would refuse to launch
    no_gpu_conf = checks.resolve(loaded, "azure")["jobs"][b.SANDBOX_JOB]
    del no_gpu_conf["job_clusters"][0]["new_cluster"]["spark_conf"][
        "spark.task.resource.gpu.amount"
    ]
    with pytest.raises(TrainingLaunchError, match=r"spark\.task\.resource\.gpu\.amount"):
        checks.check_gpu_settings(no_gpu_conf)
    # more TensorFlow workers than the cluster has GPUs: a barrier job would wait forever
    with pytest.raises(TrainingLaunchError, match="num_slots is 3"):
        checks.check_gpu_settings(
            checks.resolve(loaded, "azure", {"num_slots": "3"})["jobs"][b.SANDBOX_JOB]
        )
    checks.check_gpu_settings(
        checks.resolve(loaded, "azure", {"num_slots": "4", "num_workers": 2, "gpus_per_worker": 2})[
            "jobs"
        ][b.SANDBOX_JOB]
    )


def test_undefined_variable_is_refused(loaded):
    broken = copy.deepcopy(loaded)
    del broken["variables"]["node_type_id"]
    with pytest.raises(KeyError, match=r"var\.node_type_id"):
        checks.resolve(broken, "azure")


@pytest.mark.slow
def test_committed_resources_are_what_make_bundle_generates(project_root, tmp_path):
    out = tmp_path / "resources"
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "mnist_pipeline.databricks.bundle",
            "--project",
            str(project_root),
            "--output",
            str(out),
        ],
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    committed = sorted(p.name for p in (project_root / "resources").glob("*.yml"))
    assert sorted(p.name for p in out.glob("*.yml")) == committed
    for name in committed:
        assert (out / name).read_text() == (project_root / "resources" / name).read_text(), (
            f"resources/{name} is stale: run `make bundle` and commit it"
        )
    for name in committed:
        yaml.safe_load((out / name).read_text())


def test_training_job_parameters_merge_into_the_configured_training_block(project_root, azure):
    """`--params training.*` must override single keys, not replace the training block.

    Kedro merges runtime parameters into every environment layer and then replaces whole
    top-level keys of base with the env's: a parameters file in conf/azure/ would turn the
    job's `--params training.mode=...` into a training block of five keys.
    """
    from kedro.config import OmegaConfigLoader
    from omegaconf import OmegaConf

    from mnist_pipeline import settings

    job = azure["jobs"][b.SANDBOX_JOB]
    training = next(t for t in job["tasks"] if t["task_key"] == "training")
    defaults = {p["name"]: p["default"] for p in job["parameters"]}
    overrides = checks.task_params(_params(training)[-1], defaults)
    runtime = OmegaConf.to_container(
        OmegaConf.from_dotlist([f"{k}={v}" for k, v in overrides.items()])
    )
    conf = str(project_root / "conf")
    args = settings.CONFIG_LOADER_ARGS
    configured = OmegaConfigLoader(conf_source=conf, env="azure", **args)["parameters"]["training"]
    merged = OmegaConfigLoader(conf_source=conf, env="azure", runtime_params=runtime, **args)
    merged = merged["parameters"]["training"]
    assert set(merged) == set(configured)
    assert merged["distribution"]["num_slots"] == 2 and merged["distribution"]["use_gpu"] is True
    assert merged["checkpoint"] == configured["checkpoint"]


def _uc_name(resource: dict) -> str:
    return f"{resource['catalog_name']}.{resource['schema_name']}.{resource['name']}"


@pytest.mark.parametrize("target", ["azure", "gcp"])
def test_unity_catalog_by_default(loaded, target):
    """Both registries are Unity Catalog; each target declares its schema, volume and
    registered model, the jobs use that model name and that volume as the data root."""
    config = checks.resolve_target(loaded, target)
    resources = config["resources"]
    (schema,) = resources["schemas"].values()
    (volume,) = resources["volumes"].values()
    (model,) = resources["registered_models"].values()
    # in the declared schema, so the CLI orders the deploy (capture_uc_dependencies.go)
    for inside in (volume, model):
        assert (inside["catalog_name"], inside["schema_name"]) == (
            schema["catalog_name"],
            schema["name"],
        )
    assert volume["volume_type"] == "MANAGED"
    assert config["variables"]["data_root"] == (
        f"/Volumes/{volume['catalog_name']}/{volume['schema_name']}/{volume['name']}"
    )
    for thing in (schema, volume, model):
        assert thing["lifecycle"] == {"prevent_destroy": True}  # `bundle destroy` keeps data
    jobs = list(resources["jobs"])
    envs = [_env(resources, job) for job in jobs]
    for env in envs:
        assert env["MNIST_DATA_ROOT"] == config["variables"]["data_root"]
        assert env["MLFLOW_PRODUCTION_MODEL_NAME"] == "prod.ml.mnist_cnn"
        registry = env["MLFLOW_PRODUCTION_REGISTRY_URI"]
        assert registry.split(":")[0] == "databricks-uc"
        validate_model_name(env["MLFLOW_PRODUCTION_MODEL_NAME"], registry, "production")
    if target == "azure":
        (env,) = envs
        assert env["MLFLOW_SANDBOX_REGISTRY_URI"] == "databricks-uc"
        assert env["MLFLOW_SANDBOX_MODEL_NAME"] == _uc_name(model) == "sandbox.ml.mnist_cnn"
        validate_model_name(env["MLFLOW_SANDBOX_MODEL_NAME"], "databricks-uc", "sandbox")
    else:
        assert _uc_name(model) == "prod.ml.mnist_cnn"  # where the sandbox promotes into


@pytest.mark.parametrize("target", ["azure", "gcp"])
def test_grants_go_to_the_job_principal_and_the_readers(loaded, target):
    config = checks.resolve_target(loaded, target)
    principal = config["run_as"]["service_principal_name"]
    readers = config["variables"]["readers_group"]
    wanted = {
        "schemas": ({"USE_SCHEMA", "CREATE_MODEL"}, {"USE_SCHEMA"}),
        "volumes": ({"READ_VOLUME", "WRITE_VOLUME"}, {"READ_VOLUME"}),
        "registered_models": ({"EXECUTE"}, {"EXECUTE"}),
    }
    for kind, (for_principal, for_readers) in wanted.items():
        (thing,) = config["resources"][kind].values()
        grants = {g["principal"]: set(g["privileges"]) for g in thing["grants"]}
        assert grants == {principal: for_principal, readers: for_readers}, kind


def test_the_legacy_workspace_registry_stays_selectable(loaded):
    """`--var sandbox_registry=databricks --var sandbox_model_name=mnist_cnn` (and the same for
    production): one-part names on the workspace registry; a UC name there is refused."""
    legacy = {
        "sandbox_registry": "databricks",
        "sandbox_model_name": "mnist_cnn",
        "production_registry": "databricks",
        "production_model_name": "mnist_cnn",
    }
    env = _env(checks.resolve(loaded, "azure", legacy), b.SANDBOX_JOB)
    assert env["MLFLOW_SANDBOX_REGISTRY_URI"] == "databricks"
    assert env["MLFLOW_PRODUCTION_REGISTRY_URI"] == "databricks://data_masters:data_master_sandbox"
    validate_model_name(env["MLFLOW_SANDBOX_MODEL_NAME"], env["MLFLOW_SANDBOX_REGISTRY_URI"], "s")
    validate_model_name(
        env["MLFLOW_PRODUCTION_MODEL_NAME"], env["MLFLOW_PRODUCTION_REGISTRY_URI"], "p"
    )
    gcp_env = _env(checks.resolve(loaded, "gcp", legacy), b.DEPLOY_JOB)
    assert gcp_env["MLFLOW_PRODUCTION_REGISTRY_URI"] == "databricks"
    half = {"sandbox_registry": "databricks"}  # the registry changed, the UC name kept
    env = _env(checks.resolve(loaded, "azure", half), b.SANDBOX_JOB)
    with pytest.raises(RegistryConfigError, match="three-level"):
        validate_model_name(
            env["MLFLOW_SANDBOX_MODEL_NAME"], env["MLFLOW_SANDBOX_REGISTRY_URI"], "s"
        )


@pytest.mark.parametrize("target", ["azure", "gcp"])
def test_every_cluster_runs_dedicated_to_the_job_principal(loaded, target):
    config = checks.resolve_target(loaded, target)
    principal = config["run_as"]["service_principal_name"]
    assert config["workspace"]["root_path"].startswith(f"/Workspace/Users/{principal}/.bundle/")
    for job in config["resources"]["jobs"].values():
        for cluster in job["job_clusters"]:
            spec = cluster["new_cluster"]
            assert spec["data_security_mode"] == "SINGLE_USER"  # ML runtimes + UC volumes
            assert spec["single_user_name"] == principal


def test_the_principal_is_looked_up_per_target(loaded):
    principals = {
        t: checks.resolve_target(loaded, t)["run_as"]["service_principal_name"]
        for t in ("azure", "gcp")
    }
    assert principals == {
        "azure": checks.lookup_stand_in("service_principal", "mnist-pipeline-sandbox"),
        "gcp": checks.lookup_stand_in("service_principal", "mnist-pipeline-production"),
    }
    given = checks.resolve_target(loaded, "gcp", {"service_principal": "1234"})
    assert given["run_as"] == {"service_principal_name": "1234"}


def test_workspace_host_resolves_per_target(loaded, gcp):
    hosts = {t: checks.resolve_target(loaded, t)["workspace"]["host"] for t in ("azure", "gcp")}
    assert hosts["azure"].endswith(".azuredatabricks.net")  # the sandbox is the Azure workspace
    assert hosts["gcp"].endswith(".gcp.databricks.com")
    for job in gcp["jobs"]:
        assert _env(gcp, job)["DATABRICKS_HOST"] == hosts["gcp"]


def test_production_jobs_run_on_paused_schedules_and_notify_on_failure(loaded, azure, gcp):
    for key in (b.BATCH_SCORING_JOB, b.MONITORING_JOB):
        schedule = gcp["jobs"][key]["schedule"]
        assert schedule["pause_status"] == "PAUSED"
        assert schedule["timezone_id"] == "UTC"
    assert gcp["jobs"][b.BATCH_SCORING_JOB]["tasks"][0]["task_key"] == "batch_scoring"
    monitoring = gcp["jobs"][b.MONITORING_JOB]
    params = checks.task_params(
        _argument(monitoring["tasks"][0], "--params"),
        {p["name"]: p["default"] for p in monitoring["parameters"]},
    )
    assert params == {"monitoring.source": "batch_scores", "monitoring.fail_on_drift": True}
    for target in (azure, gcp):
        for job in target["jobs"].values():
            assert job["email_notifications"] == {"on_failure": []}
            assert job["webhook_notifications"] == {"on_failure": []}
    told = checks.resolve(
        loaded,
        "gcp",
        {
            "schedule_pause_status": "UNPAUSED",
            "failure_emails": ["ml-oncall@example.com"],
            "failure_webhooks": [{"id": "0f1e2d3c"}],
        },
    )
    for job in told["jobs"].values():
        typed = Job.from_dict(copy.deepcopy(job))
        assert typed.email_notifications.on_failure == ["ml-oncall@example.com"]
        assert typed.webhook_notifications.on_failure[0].id == "0f1e2d3c"
    assert told["jobs"][b.MONITORING_JOB]["schedule"]["pause_status"] == "UNPAUSED"


def test_promotion_experiment_is_a_shared_workspace_path(azure, gcp):
    experiment = _env(azure, b.SANDBOX_JOB)["MLFLOW_PRODUCTION_PROMOTION_EXPERIMENT"]
    assert experiment == "/Shared/mnist_pipeline_promotions"
    # declared in the production workspace, where the copies' runs are written
    assert gcp["experiments"]["mnist_promotion_experiment"]["name"] == experiment
    for target in (azure, gcp):
        for item in target["experiments"].values():
            assert item["name"].startswith("/")  # Databricks refuses a relative name
