"""The Asset Bundle (databricks.yml + resources/), checked offline.

Typed resources of the `databricks-bundles` package refuse unknown or misspelt fields; the
task list, flags, entry points, secrets and GPU settings are checked against the project.
"""

from __future__ import annotations

import copy
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest
import yaml
from databricks.bundles.jobs import Job
from databricks.bundles.model_serving_endpoints import ModelServingEndpoint

from mnist_pipeline.databricks import bundle as b
from mnist_pipeline.pipeline_registry import SANDBOX_STAGES
from mnist_pipeline.training.runner import TrainingLaunchError


@pytest.fixture(scope="module")
def loaded(project_root: Path) -> dict:
    return b.load(project_root)


@pytest.fixture(scope="module")
def azure(loaded) -> dict:
    return b.resolve(loaded, "azure")


@pytest.fixture(scope="module")
def gcp(loaded) -> dict:
    return b.resolve(loaded, "gcp")


def _params(task: dict) -> list[str]:
    return task["python_wheel_task"]["parameters"]


def test_targets_hold_their_own_resources(azure, gcp):
    assert set(azure) == {"jobs"} and set(azure["jobs"]) == {b.SANDBOX_JOB}
    assert set(gcp["jobs"]) == {b.DEPLOY_JOB}
    assert set(gcp["model_serving_endpoints"]) == {b.ENDPOINT}


def test_resources_parse_into_typed_bundle_resources(azure, gcp):
    for target in (azure, gcp):
        for job in target["jobs"].values():
            assert Job.from_dict(copy.deepcopy(job)).tasks
    endpoint = ModelServingEndpoint.from_dict(
        copy.deepcopy(gcp["model_serving_endpoints"]["mnist_cnn"])
    )
    (entity,) = endpoint.config.served_entities
    assert (entity.entity_name, entity.entity_version) == ("prod.ml.mnist_cnn", "1")
    assert (entity.workload_type.value, entity.workload_size) == ("CPU", "Small")
    assert entity.scale_to_zero_enabled is True
    # the typed classes do refuse what the CLI would refuse
    bad = copy.deepcopy(azure["jobs"][b.SANDBOX_JOB])
    bad["tasks"][0]["task_kee"] = bad["tasks"][0].pop("task_key")
    with pytest.raises(ValueError, match="task_kee"):
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
    params = b._task_params(
        _params(training)[-1], {p["name"]: p["default"] for p in job["parameters"]}
    )
    assert params == {
        "training.mode": "distributed",
        "training.distribution.use_gpu": True,
        "training.distribution.num_slots": 2,
        "training.epochs": 4,
        "training.batch_size": 128,
    }


def test_deploy_job_validates_then_updates_endpoint_then_smoke_tests(gcp):
    tasks = gcp["jobs"][b.DEPLOY_JOB]["tasks"]
    assert [t["task_key"] for t in tasks] == ["validate", "update_endpoint", "smoke_test"]
    assert _params(tasks[0])[:4] == ["--env", "gcp", "--pipelines", "deploy"]
    assert _params(tasks[1])[0] == "update-endpoint" and tasks[1]["depends_on"] == [
        {"task_key": "validate"}
    ]
    assert _params(tasks[2])[0] == "smoke-test" and tasks[2]["depends_on"] == [
        {"task_key": "update_endpoint"}
    ]
    url = _params(tasks[2])[_params(tasks[2]).index("--url") + 1]
    assert url.endswith("/serving-endpoints/mnist-cnn/invocations")


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
                # the clusters' lock first, then the wheel (libraries install in order)
                lock, wheel = task["libraries"]
                assert lock["requirements"].endswith("/files/requirements-databricks.txt")
                assert (project_root / "requirements-databricks.txt").is_file()
                assert wheel == {"whl": "../dist/*.whl"}


def test_secrets_are_references_and_scope_names_are_the_cases(loaded, azure, gcp):
    cluster = azure["jobs"][b.SANDBOX_JOB]["job_clusters"][0]["new_cluster"]
    env = cluster["spark_env_vars"]
    assert env["MLFLOW_PRODUCTION_TRACKING_URI"] == "databricks://data_masters:data_master_sandbox"
    gcp_env = gcp["jobs"][b.DEPLOY_JOB]["job_clusters"][0]["new_cluster"]["spark_env_vars"]
    assert gcp_env["DATABRICKS_TOKEN"] == "{{secrets/data_masters_gcp/data_master_deploy-token}}"
    assert b.literal_secrets({}, azure) == [] and b.literal_secrets({}, gcp) == []
    assert loaded["variables"]["secret_scope"]["default"] == "data_masters"


def test_a_literal_token_anywhere_in_the_bundle_is_found(project_root, gcp):
    texts = {
        p.name: p.read_text()
        for p in [
            project_root / "databricks.yml",
            *sorted((project_root / "resources").glob("*.yml")),
        ]
    }
    assert b.literal_secrets(texts, gcp) == []
    fake = "dapi" + "0123456789abcdef" * 2
    planted = dict(texts)
    planted["deploy_job.yml"] = texts["deploy_job.yml"].replace(
        "{{secrets/${var.secret_scope}/${var.secret_key}-token}}", fake, 1
    )
    assert any(p.startswith("deploy_job.yml:") for p in b.literal_secrets(planted))
    leaked = copy.deepcopy(gcp)
    leaked["jobs"][b.DEPLOY_JOB]["job_clusters"][0]["new_cluster"]["spark_env_vars"][
        "MNIST_SERVING_TOKEN"
    ] = "hunter2"
    assert any("MNIST_SERVING_TOKEN" in p for p in b.literal_secrets({}, leaked))


def test_gpu_settings_agree_with_the_runners_fail_fast_check(loaded):
    b.check_gpu_settings(b.resolve(loaded, "azure")["jobs"][b.SANDBOX_JOB])
    # use_gpu without the GPU resource amount: the runner would refuse to launch
    no_gpu_conf = b.resolve(loaded, "azure")["jobs"][b.SANDBOX_JOB]
    del no_gpu_conf["job_clusters"][0]["new_cluster"]["spark_conf"][
        "spark.task.resource.gpu.amount"
    ]
    with pytest.raises(TrainingLaunchError, match=r"spark\.task\.resource\.gpu\.amount"):
        b.check_gpu_settings(no_gpu_conf)
    # more TensorFlow workers than the cluster has GPUs: a barrier job would wait forever
    with pytest.raises(TrainingLaunchError, match="num_slots is 3"):
        b.check_gpu_settings(b.resolve(loaded, "azure", {"num_slots": "3"})["jobs"][b.SANDBOX_JOB])
    b.check_gpu_settings(
        b.resolve(loaded, "azure", {"num_slots": "4", "num_workers": 2, "gpus_per_worker": 2})[
            "jobs"
        ][b.SANDBOX_JOB]
    )


def test_undefined_variable_is_refused(loaded):
    broken = copy.deepcopy(loaded)
    del broken["variables"]["node_type_id"]
    with pytest.raises(KeyError, match=r"var\.node_type_id"):
        b.resolve(broken, "azure")


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
    overrides = b._task_params(_params(training)[-1], defaults)
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
