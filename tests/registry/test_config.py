"""Workspace configuration: URIs and names for SQLite, servers, Databricks, Unity Catalog."""

from __future__ import annotations

from pathlib import Path

import pytest
from kedro.config import OmegaConfigLoader

from mnist_pipeline.redaction import redact
from mnist_pipeline.registry.config import (
    RegistryConfigError,
    Workspace,
    absolute_store_uri,
    check_workspace,
    default_artifact_location,
)
from mnist_pipeline.settings import CONFIG_LOADER_ARGS
from tests.conftest import PROJECT_ROOT


def _workspace(**overrides) -> Workspace:
    config = {
        "tracking_uri": "databricks",
        "model_name": "mnist_cnn",
        "alias": "production",
        "experiment": "/Shared/mnist_pipeline_promotions",
    }
    check_workspace("production", {**config, **overrides})  # what the schema runs first
    return Workspace.from_config("production", {**config, **overrides})


@pytest.mark.parametrize(
    "uri", ["databricks", "databricks://prod-profile", "databricks://mlflow-scope:prod"]
)
def test_databricks_workspace_registry_uris_are_accepted_as_is(uri):
    workspace = _workspace(tracking_uri=uri)
    assert workspace.tracking_uri == workspace.registry_uri == uri
    assert workspace.artifact_location is None  # the workspace's own default


@pytest.mark.parametrize("registry", ["databricks-uc", "databricks-uc://prod-profile"])
def test_unity_catalog_takes_three_level_names(registry):
    workspace = _workspace(registry_uri=registry, model_name="prod.ml.mnist_cnn")
    assert (workspace.tracking_uri, workspace.registry_uri) == ("databricks", registry)
    assert workspace.model_name == "prod.ml.mnist_cnn"


@pytest.mark.parametrize("name", ["mnist_cnn", "ml.mnist_cnn", "a.b.c.d", "prod.ml.bad name"])
def test_unity_catalog_refuses_other_names_and_says_the_form(name):
    with pytest.raises(RegistryConfigError, match=r"<catalog>\.<schema>\.<model>"):
        _workspace(registry_uri="databricks-uc", model_name=name)


def test_a_three_level_name_on_a_workspace_registry_points_at_unity_catalog():
    with pytest.raises(RegistryConfigError, match="databricks-uc"):
        _workspace(model_name="prod.ml.mnist_cnn")


@pytest.mark.parametrize(
    "uri", ["databricks://", "databricks://a:b:c", "databricks://bad scope:x", "databricks-uc://"]
)
def test_malformed_databricks_uris_are_refused_with_the_accepted_forms(uri):
    key = "tracking_uri" if uri.startswith("databricks:") else "registry_uri"
    with pytest.raises(RegistryConfigError, match=r"production\.\w+_uri.*<secret-scope>"):
        _workspace(**{key: uri})


def test_databricks_experiments_must_be_workspace_paths():
    with pytest.raises(RegistryConfigError, match=r"use e\.g\. '/Shared/promotions'"):
        _workspace(experiment="promotions")


def test_unity_catalog_is_not_a_tracking_store():
    with pytest.raises(RegistryConfigError, match="tracking_uri: 'databricks-uc' is a registry"):
        _workspace(tracking_uri="databricks-uc", model_name="a.b.c")


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"alias": "latest"}, "not a valid alias"),
        ({"alias": "1st"}, "not a valid alias"),
        ({"tracking_uri": "/tmp/mlruns"}, "file store"),
        ({"tracking_uri": "file:///tmp/mlruns"}, "file store"),
    ],
)
def test_unusable_settings_name_the_key(overrides, message):
    with pytest.raises(RegistryConfigError, match=message):
        _workspace(**overrides)


def test_embedded_store_is_anchored_and_keeps_artifacts_beside_it(tmp_path):
    workspace = Workspace.from_config(
        "production",
        {"tracking_uri": "sqlite:///mlruns/production.db", "model_name": "m", "alias": "a"},
        project_path=tmp_path,
    )
    assert workspace.tracking_uri == f"sqlite:///{tmp_path}/mlruns/production.db"
    assert workspace.registry_uri == workspace.tracking_uri
    assert workspace.artifact_location == (tmp_path / "mlruns/production-artifacts").as_uri()
    assert absolute_store_uri("http://host:5000") == "http://host:5000"
    assert default_artifact_location("http://host:5000") is None


def test_an_embedded_stores_folder_is_set_up_on_every_use_keeping_what_is_there(tmp_path):
    """The first run creates mlruns/ (SQLite does not create folders); every later use (the
    registry and tracking of one store, as registry.store.client_for and the run hook set
    both up, and a second `make run`) finds it there: no error, nothing lost."""
    from mnist_pipeline.registry.config import ensure_local_store

    workspace = Workspace.from_config(
        "production",
        {"tracking_uri": "sqlite:///mlruns/production.db", "model_name": "m", "alias": "a"},
        project_path=tmp_path,
    )
    for run in ("first", "second"):
        ensure_local_store(workspace.tracking_uri)
        ensure_local_store(workspace.registry_uri)
        (tmp_path / "mlruns" / f"{run}-run").write_text("kept")
    assert sorted(p.name for p in (tmp_path / "mlruns").iterdir()) == ["first-run", "second-run"]


def test_passwords_in_uris_never_reach_descriptions():
    workspace = _workspace(tracking_uri="https://bot:s3cret@mlflow.example.com")
    assert "s3cret" not in str(workspace.describe())
    assert redact("https://bot:s3cret@host/x") == "https://bot:***@host/x"
    assert redact("databricks://scope:prefix") == "databricks://scope:prefix"


def _load(env: str, conf_source: Path = PROJECT_ROOT / "conf") -> dict:
    loader = OmegaConfigLoader(str(conf_source), env=env, **CONFIG_LOADER_ARGS)
    loader.config_patterns["mlflow"] = ["mlflow*"]
    return {"parameters": loader["parameters"], "mlflow": loader["mlflow"]}


def test_environment_variables_turn_the_config_into_databricks_uris_and_names(monkeypatch):
    monkeypatch.setenv("MLFLOW_SANDBOX_TRACKING_URI", "databricks://sandbox-profile")
    monkeypatch.setenv("MLFLOW_SANDBOX_REGISTRY_URI", "databricks-uc://sandbox-profile")
    monkeypatch.setenv("MLFLOW_SANDBOX_MODEL_NAME", "sandbox.ml.mnist_cnn")
    monkeypatch.setenv("MLFLOW_PRODUCTION_TRACKING_URI", "databricks://mlflow-scope:prod")
    monkeypatch.setenv("MLFLOW_PRODUCTION_REGISTRY_URI", "databricks-uc://mlflow-scope:prod")
    monkeypatch.setenv("MLFLOW_PRODUCTION_MODEL_NAME", "prod.ml.mnist_cnn")
    monkeypatch.setenv("MLFLOW_SANDBOX_EXPERIMENT", "/Shared/mnist_pipeline")
    monkeypatch.setenv("MLFLOW_PRODUCTION_PROMOTION_EXPERIMENT", "/Shared/promotions")
    conf = _load("azure")
    assert conf["mlflow"]["tracking"]["experiment"]["name"] == "/Shared/mnist_pipeline"
    server = conf["mlflow"]["server"]
    assert server["mlflow_tracking_uri"] == "databricks://sandbox-profile"
    assert server["mlflow_registry_uri"] == "databricks-uc://sandbox-profile"
    promotion = conf["parameters"]["promotion"]
    assert promotion["model_name"] == "sandbox.ml.mnist_cnn"
    target = Workspace.from_config("production", promotion["production"])
    assert target.tracking_uri == "databricks://mlflow-scope:prod"
    assert target.registry_uri == "databricks-uc://mlflow-scope:prod"
    assert target.model_name == "prod.ml.mnist_cnn"
    assert target.alias == "production"
    assert target.experiment == "/Shared/promotions"
    assert target.artifact_location is None


def test_embedded_defaults_are_two_separate_stores(monkeypatch):
    for name in (
        "MLFLOW_SANDBOX_TRACKING_URI",
        "MLFLOW_SANDBOX_REGISTRY_URI",
        "MLFLOW_SANDBOX_ARTIFACT_LOCATION",
        "MLFLOW_PRODUCTION_TRACKING_URI",
        "MLFLOW_PRODUCTION_REGISTRY_URI",
        "MLFLOW_PRODUCTION_ARTIFACT_LOCATION",
    ):
        monkeypatch.delenv(name, raising=False)
    sandbox = _load("azure")
    production = _load("gcp")["mlflow"]
    assert sandbox["mlflow"]["server"]["mlflow_tracking_uri"] == "sqlite:///mlruns/sandbox.db"
    assert production["server"]["mlflow_tracking_uri"] == "sqlite:///mlruns/production.db"
    sandbox_artifacts = sandbox["mlflow"]["tracking"]["experiment"]["create_experiment_kwargs"]
    production_artifacts = production["tracking"]["experiment"]["create_experiment_kwargs"]
    assert sandbox_artifacts["artifact_location"] == "mlruns/sandbox-artifacts"
    assert production_artifacts["artifact_location"] == "mlruns/production-artifacts"
    # Promotion's target is the store that `--env gcp` tracks into, artifacts included.
    target = Workspace.from_config(
        "production", sandbox["parameters"]["promotion"]["production"], project_path=PROJECT_ROOT
    )
    assert target.tracking_uri == f"sqlite:///{PROJECT_ROOT}/mlruns/production.db"
    assert target.artifact_location == (PROJECT_ROOT / "mlruns/production-artifacts").as_uri()
