"""Evaluation + promotion through a Kedro session on the embedded SQLite defaults (no server)."""

from __future__ import annotations

import json
import os
from pathlib import Path

import mlflow
import numpy as np
import pytest

from mnist_pipeline.registry.model import predict_images
from tests.integration import promotion_project

pytestmark = [pytest.mark.integration, pytest.mark.slow]


def test_embedded_defaults_register_gate_and_promote(
    tmp_path, monkeypatch, tiny_model, mnist_slices
):
    for name in list(os.environ):
        if name.startswith(("MLFLOW_", "DATABRICKS_")):
            monkeypatch.delenv(name)
    monkeypatch.setenv("MNIST_DATA_ROOT", str(tmp_path / "data"))
    project = promotion_project.make_project(tmp_path)
    promotion_project.seed_trained_candidate(
        project, "azure", tiny_model, mnist_slices["test"], "f" * 64
    )
    # The tiny model (one epoch, 3,000 images) cannot reach the default 0.99.
    promotion_project.run(
        project, "azure", runtime_params={"promotion": {"gate": {"min_accuracy": 0.5}}}
    )

    # The two embedded stores and their artifact roots, all inside the project copy.
    mlruns = project / "mlruns"
    assert {p.name for p in mlruns.iterdir()} >= {
        "sandbox.db",
        "sandbox-artifacts",
        "production.db",
        "production-artifacts",
    }
    data = tmp_path / "data"
    metrics = json.loads((data / "08_reporting/evaluation_metrics.json").read_text())
    verdict = json.loads((data / "08_reporting/gate_verdict.json").read_text())
    report = json.loads((data / "08_reporting/promotion_report.json").read_text())
    assert 0.5 < metrics["test_accuracy"] < 1.0
    assert verdict["passed"] and verdict["promote"]
    assert report["action"] == "copied" and report["alias_after"] == report["version"]
    for plot in ("confusion_matrix", "misclassified", "training_curves"):
        assert (data / f"08_reporting/{plot}.png").stat().st_size > 1000

    production_uri = f"sqlite:///{mlruns / 'production.db'}"
    client = mlflow.MlflowClient(tracking_uri=production_uri, registry_uri=production_uri)
    version = client.get_model_version_by_alias("mnist_cnn", "production")
    assert version.tags["lineage.verified"] == "true"
    assert version.tags["lineage.data_fingerprint"] == "f" * 64
    # The copy's files live in production's own artifact root, not the sandbox's.
    assert list((mlruns / "production-artifacts").rglob("MLmodel"))

    # The sandbox run carries metrics, per-epoch history, plots and lineage.
    sandbox_uri = f"sqlite:///{mlruns / 'sandbox.db'}"
    sandbox = mlflow.MlflowClient(tracking_uri=sandbox_uri, registry_uri=sandbox_uri)
    # The candidate is this run's own state (in memory); the verdict names what it judged.
    assert not (data / "06_models/candidate_model_version.json").exists()
    candidate = {"version": verdict["candidate_version"], **verdict["candidate"]}
    assert report["candidate_version"] == candidate["version"]
    run = sandbox.get_run(candidate["run_id"])
    assert run.data.metrics["evaluation.test_accuracy"] == pytest.approx(metrics["test_accuracy"])
    # Per-epoch metrics are logged live by the training node (not run here), never again
    # after the fact by evaluation (tests/training/test_live_metrics.py).
    assert sandbox.get_metric_history(run.info.run_id, "epoch.loss") == []
    assert run.data.tags["gate.passed"] == "True"
    assert run.data.tags["data_fingerprint"] == "f" * 64
    artifacts = {a.path for a in sandbox.list_artifacts(run.info.run_id)}
    assert {"confusion_matrix.png", "misclassified.png", "per_class_report.csv"} <= artifacts
    champion = sandbox.get_model_version_by_alias("mnist_cnn", "champion")
    assert str(champion.version) == candidate["version"]

    # The promoted model takes raw MNIST images, with or without the channel axis.
    with promotion_project.mlflow_state():
        mlflow.set_tracking_uri(production_uri)
        mlflow.set_registry_uri(production_uri)
        served = mlflow.pyfunc.load_model("models:/mnist_cnn@production")
    images = mnist_slices["test"]["images"][:50]
    probabilities = served.predict(images.astype(np.float32))  # the signature: float32 (N, 28, 28)
    assert probabilities.shape == (50, 10)
    np.testing.assert_allclose(probabilities.sum(axis=1), 1.0, atol=1e-4)
    np.testing.assert_array_equal(probabilities, predict_images(served, images[..., np.newaxis]))

    # The production version's model card: its description and an artifact of its run.
    card = version.description
    assert card.startswith(f"# mnist_cnn v{version.version} — MNIST handwritten-digit classifier")
    assert f"Test accuracy **{metrics['test_accuracy']:.4f}**" in card
    per_class = (data / "08_reporting/per_class_report.csv").read_text().splitlines()[1:]
    for row in per_class:  # digit,precision,recall,f1,support as evaluation wrote them
        digit, precision, recall, f1, _support = row.split(",")
        line = f"| {digit} | {float(precision):.4f} | {float(recall):.4f} | {float(f1):.4f} |"
        assert line in card, line
    assert f"`{'f' * 64}`" in card and verdict["checks"][0]["detail"] in card
    assert f"`{candidate['run_id']}`" in card
    assert card == (data / "08_reporting/model_card.md").read_text()
    logged = client.download_artifacts(version.run_id, "model_card.md", str(tmp_path))
    assert Path(logged).read_text() == card
