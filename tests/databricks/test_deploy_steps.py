"""The deploy job's steps after validation: databricks-sdk against a local workspace stub.

The stub (workspace_stub.py) is a real HTTP server answering in the Serving Endpoints API's
shapes; the SDK's own client, waiters, error mapping and auth (token, OAuth M2M) run
against it. The alias resolves in a real (SQLite) MLflow registry.
"""

from __future__ import annotations

import gzip
import json
from datetime import timedelta
from pathlib import Path

import numpy as np
import pytest
from databricks.sdk import WorkspaceClient

from mnist_pipeline.databricks.__main__ import main
from mnist_pipeline.databricks.endpoint import (
    SERVED_ENTITY,
    Access,
    EndpointUpdateError,
    Sizing,
    serve_alias,
    serve_version,
)
from mnist_pipeline.databricks.smoke import SmokeTestError, load_test_digits, smoke_test
from tests.databricks.workspace_stub import (
    CLIENT_ID,
    CLIENT_SECRET,
    OAUTH_ACCESS_TOKEN,
    PRINCIPAL,
    TOKEN,
    serve,
)
from tests.mlflow_stores import empty_store

MODEL = "prod.ml.mnist_cnn"
ACCESS = Access(query_groups=("mnist-pipeline-readers",), manage_groups=("mnist-pipeline-admins",))
FAST = timedelta(seconds=60)


@pytest.fixture(autouse=True)
def no_ambient_databricks_config(monkeypatch, tmp_path):
    """Only what a test sets reaches the SDK (no profile file, no DATABRICKS_* of the shell)."""
    import os

    for name in list(os.environ):
        if name.startswith(("DATABRICKS_", "ARM_", "GOOGLE_")):
            monkeypatch.delenv(name)
    monkeypatch.setenv("DATABRICKS_CONFIG_FILE", str(tmp_path / "no-databrickscfg"))


@pytest.fixture(scope="module")
def registry(tmp_path_factory) -> str:
    """A real MLflow registry with three versions of the model, @production on version 2."""
    from mlflow import MlflowClient

    folder = tmp_path_factory.mktemp("registry")
    uri = empty_store(folder / "registry.db")
    client = MlflowClient(tracking_uri=uri, registry_uri=uri)
    client.create_registered_model(MODEL)
    for _ in range(3):
        client.create_model_version(MODEL, source=str(folder))
    client.set_registered_model_alias(MODEL, "production", "2")
    return uri


@pytest.fixture
def workspace():
    with serve() as (state, host):
        yield state, WorkspaceClient(host=host, token=TOKEN)


def _entity(version: str, **sizing) -> dict:
    return {
        "name": SERVED_ENTITY,
        "entity_name": MODEL,
        "entity_version": version,
        "workload_type": "CPU",
        "workload_size": "Small",
        "scale_to_zero_enabled": True,
    } | sizing


def test_a_missing_endpoint_is_created_on_the_alias_version_with_its_access(workspace, registry):
    state, client = workspace
    result = serve_alias(
        client,
        "mnist-cnn",
        registry,
        MODEL,
        "production",
        sizing=Sizing(),
        access=ACCESS,
        wait=FAST,
    )
    assert result == {
        "endpoint": "mnist-cnn",
        "model": MODEL,
        "version": "2",
        "previous_versions": [],
        "action": "created",
    }
    (created,) = state.calls("POST", "/api/2.0/serving-endpoints")
    assert created["name"] == "mnist-cnn"
    assert created["config"]["served_entities"] == [
        {k: v for k, v in _entity("2").items()}  # one entity, the version, the sizing
    ]
    assert created["config"]["traffic_config"] == {
        "routes": [{"served_model_name": SERVED_ENTITY, "traffic_percentage": 100}]
    }
    assert state.served_versions("mnist-cnn") == ["2"]
    assert state.endpoints["mnist-cnn"]["state"]["ready"] == "READY"  # it waited
    assert state.acls["id-mnist-cnn"] == [
        {"permission_level": "CAN_MANAGE", "service_principal_name": PRINCIPAL},  # the job itself
        {"group_name": "mnist-pipeline-admins", "permission_level": "CAN_MANAGE"},
        {"group_name": "mnist-pipeline-readers", "permission_level": "CAN_QUERY"},
    ]
    assert state.authorizations == {f"Bearer {TOKEN}"}


def test_an_endpoint_moves_to_the_version_and_a_rerun_changes_nothing(workspace):
    state, client = workspace
    state.add_endpoint("mnist-cnn", [_entity("1")])
    moved = serve_version(
        client, "mnist-cnn", MODEL, "3", sizing=Sizing(), access=ACCESS, wait=FAST
    )
    assert (moved["action"], moved["previous_versions"]) == ("updated", ["1"])
    (update,) = state.calls("PUT", "/api/2.0/serving-endpoints/mnist-cnn/config")
    assert [e["entity_version"] for e in update["served_entities"]] == ["3"]
    assert state.served_versions("mnist-cnn") == ["3"]
    again = serve_version(
        client, "mnist-cnn", MODEL, "3", sizing=Sizing(), access=ACCESS, wait=FAST
    )
    assert again["action"] == "unchanged"
    assert len(state.calls("PUT", "/api/2.0/serving-endpoints/mnist-cnn/config")) == 1


def test_resizing_updates_the_same_version_with_concurrency_bounds(workspace):
    state, client = workspace
    state.polls = 0
    state.add_endpoint("mnist-cnn", [_entity("2")])
    bounds = Sizing(workload_size=None, scale_to_zero=False, min_concurrency=4, max_concurrency=8)
    result = serve_version(client, "mnist-cnn", MODEL, "2", sizing=bounds, access=ACCESS, wait=FAST)
    assert result["action"] == "updated"
    (update,) = state.calls("PUT", "/api/2.0/serving-endpoints/mnist-cnn/config")
    (entity,) = update["served_entities"]
    assert "workload_size" not in entity  # the API takes a size or bounds, never both
    assert (entity["min_provisioned_concurrency"], entity["max_provisioned_concurrency"]) == (4, 8)
    assert entity["scale_to_zero_enabled"] is False
    again = serve_version(client, "mnist-cnn", MODEL, "2", sizing=bounds, access=ACCESS, wait=FAST)
    assert again["action"] == "unchanged"


def test_a_failed_update_fails_the_step_and_the_previous_version_keeps_serving(workspace):
    state, client = workspace
    state.polls, state.outcome = 0, "UPDATE_FAILED"
    state.add_endpoint("mnist-cnn", [_entity("1")])
    with pytest.raises(EndpointUpdateError, match="UPDATE_FAILED"):
        serve_version(client, "mnist-cnn", MODEL, "2", sizing=Sizing(), access=ACCESS, wait=FAST)
    assert state.served_versions("mnist-cnn") == ["1"]
    assert state.acls == {}  # nothing past the failure


@pytest.mark.parametrize("outcome", ["UPDATE_FAILED", "UPDATE_CANCELED"])
def test_an_update_that_fails_or_is_cancelled_fails_the_step_naming_it(workspace, outcome):
    state, client = workspace
    state.polls, state.outcome = 0, outcome
    state.add_endpoint("mnist-cnn", [_entity("1")])
    with pytest.raises(EndpointUpdateError, match=outcome):
        serve_version(client, "mnist-cnn", MODEL, "2", sizing=Sizing(), access=ACCESS, wait=FAST)
    assert state.served_versions("mnist-cnn") == ["1"]  # the previous version keeps serving
    assert state.acls == {}


def test_an_endpoint_not_ready_after_the_update_fails_the_step(workspace):
    state, client = workspace
    state.polls, state.ready_after_update = 0, "NOT_READY"
    state.add_endpoint("mnist-cnn", [_entity("1")])
    with pytest.raises(EndpointUpdateError, match=r"serves versions \['2'\].*ready=NOT_READY"):
        serve_version(client, "mnist-cnn", MODEL, "2", sizing=Sizing(), access=ACCESS, wait=FAST)
    assert state.acls == {}


def test_an_update_in_progress_is_waited_out_then_ours_is_applied(workspace):
    state, client = workspace
    state.add_endpoint("mnist-cnn", [_entity("1")])
    state.polls = 1
    state.start_update("mnist-cnn", [_entity("4")])  # someone else's update, still running
    state.polls = 0  # ours lands at once
    result = serve_version(
        client, "mnist-cnn", MODEL, "2", sizing=Sizing(), access=ACCESS, wait=FAST
    )
    assert (result["action"], result["previous_versions"]) == ("updated", ["4"])
    assert state.served_versions("mnist-cnn") == ["2"]
    (update,) = state.calls("PUT", "/api/2.0/serving-endpoints/mnist-cnn/config")
    assert [e["entity_version"] for e in update["served_entities"]] == ["2"]


@pytest.mark.parametrize(
    ("status", "code"), [(403, "PERMISSION_DENIED"), (400, "INVALID_PARAMETER_VALUE")]
)
def test_a_4xx_reading_the_endpoint_fails_the_step_never_taken_for_missing(workspace, status, code):
    """Only 404 means "no endpoint, create it": any other 4xx is a failure, and nothing is
    created or changed."""
    state, client = workspace
    state.add_endpoint("mnist-cnn", [_entity("1")])
    state.refuse("GET", "/api/2.0/serving-endpoints/mnist-cnn", status, code, "you may not")
    with pytest.raises(EndpointUpdateError, match=r"reading it failed.*you may not"):
        serve_version(client, "mnist-cnn", MODEL, "2", sizing=Sizing(), access=ACCESS, wait=FAST)
    assert [(m, p) for m, p, _ in state.requests if m != "GET"] == []
    assert state.served_versions("mnist-cnn") == ["1"]


def test_an_endpoint_that_also_serves_another_model_is_left_alone(workspace):
    """The update replaces the endpoint's whole config: another model's entity beside ours
    (a challenger someone deployed) would silently go. The step refuses instead."""
    state, client = workspace
    challenger = _entity("4") | {"name": "challenger", "entity_name": "prod.ml.other"}
    state.add_endpoint("mnist-cnn", [_entity("1"), challenger])
    with pytest.raises(EndpointUpdateError, match=r"also serves \['prod.ml.other'\]"):
        serve_version(client, "mnist-cnn", MODEL, "2", sizing=Sizing(), access=ACCESS, wait=FAST)
    assert state.calls("PUT", "/api/2.0/serving-endpoints/mnist-cnn/config") == []
    assert state.served_versions("mnist-cnn") == ["1", "4"]


def test_an_endpoint_splitting_traffic_over_two_entities_ends_with_one_taking_it_all(workspace):
    """Two entities of this model (a canary copy of the version): the step leaves one entity
    of the version with all the traffic, not the split it found."""
    state, client = workspace
    state.polls = 0
    state.add_endpoint("mnist-cnn", [_entity("2"), _entity("2") | {"name": "canary"}])
    result = serve_version(
        client, "mnist-cnn", MODEL, "2", sizing=Sizing(), access=ACCESS, wait=FAST
    )
    assert result["action"] == "updated"
    config = state.endpoints["mnist-cnn"]["config"]
    assert [e["name"] for e in config["served_entities"]] == [SERVED_ENTITY]
    assert config["traffic_config"]["routes"] == [
        {"served_model_name": SERVED_ENTITY, "traffic_percentage": 100}
    ]


def test_another_models_endpoint_of_that_name_is_refused(workspace):
    state, client = workspace
    state.add_endpoint("mnist-cnn", [_entity("4") | {"entity_name": "prod.ml.other"}])
    with pytest.raises(EndpointUpdateError, match=r"serves \['prod.ml.other'\], not"):
        serve_version(client, "mnist-cnn", MODEL, "2", sizing=Sizing(), access=ACCESS, wait=FAST)
    assert state.calls("PUT", "/api/2.0/serving-endpoints/mnist-cnn/config") == []


def test_a_missing_alias_and_a_wrong_token_say_why(workspace, registry):
    state, client = workspace
    with pytest.raises(
        EndpointUpdateError, match=r"cannot resolve models:/\S+@champion .*Promote a model first"
    ):
        serve_alias(
            client, "mnist-cnn", registry, MODEL, "champion", sizing=Sizing(), access=ACCESS
        )
    assert state.requests == []  # nothing was asked of the workspace
    wrong = WorkspaceClient(host=state.host, token="wrong-token-value")
    with pytest.raises(EndpointUpdateError, match="Invalid access token") as caught:
        serve_version(wrong, "mnist-cnn", MODEL, "2", sizing=Sizing(), access=ACCESS)
    assert "wrong-token-value" not in str(caught.value)


@pytest.mark.parametrize(
    ("sizing", "words"),
    [
        ({"workload_type": "TPU"}, "workload type 'TPU' is not one of"),
        ({"min_concurrency": 4}, "both concurrency bounds"),
        ({"min_concurrency": 0, "max_concurrency": 8}, "one or the other"),
        ({"workload_size": None, "min_concurrency": 8, "max_concurrency": 4}, "min <= max"),
        ({"workload_size": None, "min_concurrency": 4, "max_concurrency": 8}, "scale to zero"),
        ({"workload_size": None}, "give a workload size"),
    ],
)
def test_contradictory_sizing_is_refused_before_any_call(sizing, words):
    with pytest.raises(EndpointUpdateError, match=words):
        Sizing(**sizing)


def test_the_jobs_command_line_through_the_sdks_oauth_m2m(registry, monkeypatch, capsys):
    """`update-endpoint` as the deploy job's task runs it, with the credentials an OAuth
    service principal gives the SDK's default chain (DATABRICKS_CLIENT_ID/SECRET)."""
    with serve() as (state, host):
        state.add_endpoint("mnist-cnn", [_entity("1")])
        monkeypatch.setenv("DATABRICKS_HOST", host)
        monkeypatch.setenv("DATABRICKS_CLIENT_ID", CLIENT_ID)
        monkeypatch.setenv("DATABRICKS_CLIENT_SECRET", CLIENT_SECRET)
        args = ["update-endpoint", "--endpoint", "mnist-cnn", "--model-name", MODEL]
        args += ["--alias", "production", "--registry-uri", registry, "--wait-s", "60"]
        args += ["--query-group", "mnist-pipeline-readers", "--manage-group", "admins"]
        assert main(args) is None
        out = json.loads(capsys.readouterr().out)
        assert (out["version"], out["action"]) == ("2", "updated")
        assert state.served_versions("mnist-cnn") == ["2"]
        assert state.authorizations == {f"Bearer {OAUTH_ACCESS_TOKEN}"}
        assert CLIENT_SECRET not in capsys.readouterr().err


@pytest.fixture
def digits(real_mnist_dir: Path) -> tuple[np.ndarray, np.ndarray]:
    return load_test_digits(real_mnist_dir, 5)


def test_smoke_test_sends_raw_images_as_instances_and_checks_digits(workspace, digits):
    state, client = workspace
    state.add_endpoint("mnist-cnn", [_entity("2")])
    images, labels = digits
    lookup = {
        np.asarray(i, dtype=np.uint8).tobytes(): int(n) for i, n in zip(images, labels, strict=True)
    }
    state.answer = lambda body: [
        np.eye(10)[lookup[np.asarray(x, dtype=np.uint8).tobytes()]].tolist()
        for x in body["instances"]
    ]
    result = smoke_test(client, "mnist-cnn", images, labels)
    assert result.digits == labels.tolist() and result.correct == 5
    bodies = state.calls("POST", "/serving-endpoints/mnist-cnn/invocations")
    assert len(bodies) == 5
    for body, image in zip(bodies, images, strict=True):
        assert set(body) == {"instances"}
        assert np.array_equal(np.asarray(body["instances"]), image[np.newaxis])  # raw 0–255

    state.answer = lambda body: [np.eye(10)[0].tolist() for _ in body["instances"]]
    with pytest.raises(SmokeTestError, match=r"answered digits \[0, 0, 0, 0, 0\]"):
        smoke_test(client, "mnist-cnn", images, labels)
    state.answer = lambda body: [[0.5, 0.5]]
    with pytest.raises(SmokeTestError, match=r"shape \(1, 2\)"):
        smoke_test(client, "mnist-cnn", images, labels)
    with pytest.raises(SmokeTestError, match="did not answer: ResourceDoesNotExist"):
        smoke_test(client, "no-such-endpoint", images, labels)


def test_smoke_test_command_line(real_mnist_dir, monkeypatch, capsys, digits):
    images, labels = digits
    with serve() as (state, host):
        state.add_endpoint("mnist-cnn", [_entity("2")])
        by_image = {np.asarray(i).tobytes(): int(n) for i, n in zip(images, labels, strict=True)}
        state.answer = lambda body: [
            np.eye(10)[by_image[np.asarray(x, dtype=np.uint8).tobytes()]].tolist()
            for x in body["instances"]
        ]
        monkeypatch.setenv("DATABRICKS_HOST", host)
        monkeypatch.setenv("DATABRICKS_TOKEN", TOKEN)
        args = ["smoke-test", "--endpoint", "mnist-cnn", "--data-dir", str(real_mnist_dir)]
        assert main([*args, "--count", "3"]) is None
        assert json.loads(capsys.readouterr().out)["digits"] == labels[:3].tolist()


def test_smoke_test_reads_the_cached_test_split(real_mnist_dir, tmp_path):
    images, _ = load_test_digits(real_mnist_dir, 2)
    assert images.shape == (2, 28, 28) and images.dtype == np.uint8
    (tmp_path / "t10k-images-idx3-ubyte.gz").write_bytes(gzip.compress(b"not idx"))
    (tmp_path / "t10k-labels-idx1-ubyte.gz").write_bytes(b"")
    with pytest.raises(ValueError, match="t10k-images"):
        load_test_digits(tmp_path, 2)
