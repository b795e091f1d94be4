"""Promotion nodes on embedded SQLite stores: registration, gate outcomes, copy verification."""

from __future__ import annotations

import keras
import mlflow
import numpy as np
import pytest

from mnist_pipeline.pipelines.promotion import nodes
from mnist_pipeline.registry import CopyMismatchError, GateRefusedError, store
from mnist_pipeline.registry.config import Workspace
from mnist_pipeline.registry.model import KERAS_ARTIFACT, predict_images
from mnist_pipeline.registry.promotion import promote
from tests.integration.promotion_project import mlflow_state
from tests.mlflow_stores import empty_store

FINGERPRINT = {"model_input": "b" * 64}


@pytest.fixture
def stores(tmp_path):
    """A sandbox store that MLflow points at (as kedro-mlflow would) and promotion params."""
    sandbox = empty_store(tmp_path / "sandbox.db")
    production = empty_store(tmp_path / "prod" / "production.db")
    params = {
        "model_name": "mnist_cnn",
        "champion_alias": "champion",
        "gate": {
            "mode": "enabled",
            "metric": "test_accuracy",
            "min_accuracy": 0.5,
            "tolerance": 0.0,
            "fail_run_on_refusal": True,
        },
        "production": {
            "tracking_uri": production,
            "model_name": "mnist_cnn",
            "alias": "production",
        },
        "verify": {"num_images": 32, "seed": 0, "atol": 1e-6},
    }
    with mlflow_state():
        mlflow.set_tracking_uri(sandbox)
        mlflow.set_registry_uri(sandbox)
        mlflow.set_experiment("tests")
        with mlflow.start_run():
            yield params, Workspace.from_config("production", params["production"])


def _metrics(accuracy: float) -> dict[str, float]:
    return {"test_accuracy": accuracy, "test_loss": 0.5}


def _noisy(model, scale: float = 0.2):
    other = keras.models.clone_model(model)
    weights = model.get_weights()
    weights[-2] = weights[-2] + np.random.default_rng(1).normal(0, scale, weights[-2].shape)
    other.set_weights([w.astype(np.float32) for w in weights])
    return other


def test_registration_reuses_the_version_of_the_same_weights(stores, tiny_model, mnist_slices):
    params, _ = stores
    model, _ = tiny_model
    test = mnist_slices["test"]
    first = nodes.register_candidate(model, _metrics(0.9), FINGERPRINT, test, params)
    again = nodes.register_candidate(model, _metrics(0.9), FINGERPRINT, test, params)
    other = nodes.register_candidate(_noisy(model), _metrics(0.8), FINGERPRINT, test, params)
    assert (first["version"], again["version"], other["version"]) == ("1", "1", "2")
    assert not first["reused"] and again["reused"]
    version = mlflow.MlflowClient().get_model_version("mnist_cnn", "1")
    assert version.tags["data_fingerprint"] == "b" * 64
    assert version.tags["metric.test_accuracy"] == "0.900000"
    run = mlflow.MlflowClient().get_run(mlflow.active_run().info.run_id)
    assert run.data.tags["data_fingerprint"] == "b" * 64


def test_the_logged_model_takes_raw_images_and_refuses_others_clearly(
    stores, tiny_model, mnist_slices
):
    params, _ = stores
    model, _ = tiny_model
    test = mnist_slices["test"]
    candidate = nodes.register_candidate(model, _metrics(0.9), FINGERPRINT, test, params)
    served = mlflow.pyfunc.load_model(candidate["model_uri"])
    expected = model.predict(test["images"][:8, ..., None].astype(np.float32), verbose=0)
    # The signature's input: float32 (N, 28, 28), 0-255; predict_images takes any form.
    raw_images = test["images"][:8].astype(np.float32)
    np.testing.assert_allclose(served.predict(raw_images), expected, atol=1e-6)
    single = predict_images(served, test["images"][0].tolist())
    np.testing.assert_allclose(single, expected[:1], atol=1e-6)
    assert served.metadata.signature.inputs.inputs[0].shape == (-1, 28, 28)
    assert served.metadata.signature.outputs.inputs[0].shape == (-1, 10)
    with pytest.raises(mlflow.exceptions.MlflowException, match=r"\(2, 28, 27\)"):
        served.predict(np.zeros((2, 28, 27), np.float32))
    with pytest.raises(mlflow.exceptions.MlflowException, match=r"in \[0, 255\]"):
        served.predict(np.full((1, 28, 28), 300.0, np.float32))
    raw = served.unwrap_python_model().get_raw_model()
    assert isinstance(raw, keras.Model) and KERAS_ARTIFACT == "keras_model"


def test_dry_run_and_refusal_move_nothing(stores, tiny_model, mnist_slices):
    params, target = stores
    model, _ = tiny_model
    test = mnist_slices["test"]
    candidate = nodes.register_candidate(model, _metrics(0.3), FINGERPRINT, test, params)

    dry = {**params, "gate": {**params["gate"], "mode": "dry_run"}}
    verdict, _ = nodes.judge_candidate(candidate, dry)
    assert nodes.promote_candidate(candidate, verdict, test, dry)["action"] == "skipped"

    verdict, _ = nodes.judge_candidate(candidate, params)
    with pytest.raises(GateRefusedError, match=r"0\.3000 < minimum 0\.5000"):
        nodes.promote_candidate(candidate, verdict, test, params)
    assert store.alias_version(mlflow.MlflowClient(), "mnist_cnn", "champion") is None
    # Production holds no model: nothing was copied, no alias set.
    assert store.client_for(target).search_registered_models() == []


def test_a_copy_that_predicts_differently_never_gets_the_alias(stores, tiny_model, mnist_slices):
    params, target = stores
    model, _ = tiny_model
    test = mnist_slices["test"]
    good = nodes.register_candidate(model, _metrics(0.9), FINGERPRINT, test, params)
    verdict, _ = nodes.judge_candidate(good, params)
    assert nodes.promote_candidate(good, verdict, test, params)["action"] == "copied"

    # A second candidate whose production "copy" holds other weights (a corrupted copy):
    # the copy step finds it by its lineage tag and must refuse it on verification.
    other = nodes.register_candidate(_noisy(model), _metrics(0.9), FINGERPRINT, test, params)
    sandbox = store.current_workspace("mnist_cnn", "champion")
    corrupt = store.copy_version(
        sandbox, good["version"], target, {store.TAG_SOURCE_KEY: store.source_key(sandbox, "2")}
    )
    with pytest.raises(CopyMismatchError, match="predicts differently"):
        promote(sandbox, target, other, test["images"][:32])
    client = store.client_for(target)
    assert str(client.get_model_version_by_alias("mnist_cnn", "production").version) == "1"
    assert (
        client.get_model_version("mnist_cnn", corrupt.version).tags["lineage.verified"] == "false"
    )


def test_an_unreachable_production_moves_no_alias_anywhere(stores, tiny_model, mnist_slices):
    from mnist_pipeline.registry import RegistryUnreachableError
    from tests.integration.mlflow_servers import free_port

    params, _ = stores
    model, _ = tiny_model
    test = mnist_slices["test"]
    champion = nodes.register_candidate(model, _metrics(0.9), FINGERPRINT, test, params)
    client = mlflow.MlflowClient()
    store.set_alias(client, "mnist_cnn", "champion", champion["version"])
    challenger = nodes.register_candidate(_noisy(model), _metrics(0.95), FINGERPRINT, test, params)
    down = f"http://127.0.0.1:{free_port()}"  # nothing listens there
    offline = {**params, "production": {**params["production"], "tracking_uri": down}}
    decision, _ = nodes.judge_candidate(challenger, offline)
    assert decision["promote"] and decision["candidate_version"] == "2"
    with pytest.raises(RegistryUnreachableError, match=r"production tracking store .* is unr"):
        nodes.promote_candidate(challenger, decision, test, offline)
    assert str(store.alias_version(client, "mnist_cnn", "champion").version) == "1"


def test_a_verdict_about_another_version_is_never_promoted(stores, tiny_model, mnist_slices):
    params, target = stores
    model, _ = tiny_model
    test = mnist_slices["test"]
    candidate = nodes.register_candidate(model, _metrics(0.9), FINGERPRINT, test, params)
    decision, _ = nodes.judge_candidate(candidate, params)
    with pytest.raises(ValueError, match=r"judged sandbox v7 but this run registered v1"):
        nodes.promote_candidate(candidate, {**decision, "candidate_version": "7"}, test, params)
    assert store.client_for(target).search_registered_models() == []


VERDICT_PASSED = {
    "mode": "enabled",
    "passed": True,
    "promote": True,
    "reasons": ["accuracy 0.9921 >= minimum 0.9900", "no champion yet"],
    "candidate_version": "3",
}
PROMOTED = {
    "action": "copied",
    "version": "2",
    "target": {"model_name": "mnist_cnn", "alias": "production"},
    "message": "mnist_cnn@production → v2 (sandbox v3, copied)",
}


def test_outcome_gives_the_verdict_its_reasons_and_the_action():
    """The stage's line in the run's log (moved from tests/test_run_summary.py)."""
    line = nodes.outcome({"gate_verdict": VERDICT_PASSED, "promotion_report": PROMOTED})
    assert line.startswith("promotion: sandbox v3 gate passed (accuracy 0.9921 >= minimum")
    assert line.endswith("→ copied: mnist_cnn@production → v2 (sandbox v3, copied)")
    refused = {**VERDICT_PASSED, "passed": False, "promote": False, "reasons": ["too low"]}
    assert nodes.outcome({"gate_verdict": refused}) == (
        "promotion: sandbox v3 gate REFUSED (too low) → nothing promoted, production untouched"
    )
    dry = {**refused, "mode": "dry_run"}
    assert "gate REFUSED (dry_run)" in nodes.outcome({"gate_verdict": dry})
    assert nodes.outcome({"candidate_model_version": {}}) is None
