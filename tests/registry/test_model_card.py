"""The model card against a run's real figures (a model trained on real MNIST), no registry."""

from __future__ import annotations

import numpy as np
import pytest

from mnist_pipeline.pipelines.evaluation.nodes import compute_metrics, per_class_report
from mnist_pipeline.registry import gate, model_card

GATE = {
    "mode": "enabled",
    "metric": "test_accuracy",
    "min_accuracy": 0.5,
    "tolerance": 0.002,
    "fail_run_on_refusal": True,
}


@pytest.fixture(scope="module")
def figures(tiny_model, mnist_slices):
    model, _ = tiny_model
    test = mnist_slices["test"]
    probabilities = model.predict(test["images"][..., None].astype(np.float32), verbose=0)
    metrics = compute_metrics(probabilities, test)
    per_class = per_class_report(probabilities, test).to_dict("records")
    verdict = gate.decide(metrics, {"test_accuracy": metrics["test_accuracy"] - 0.01}, GATE)
    return metrics, per_class, verdict


def _card(figures) -> str:
    metrics, per_class, verdict = figures
    return model_card.render(
        production={"model_name": "mnist_cnn", "version": "7", "registry_uri": "sqlite:///p.db"},
        candidate={
            "model_name": "mnist_cnn",
            "version": "3",
            "run_id": "abc123",
            "registry_uri": "https://bot:***@sandbox.example",
            "model_sha256": "e" * 64,
            "tags": {"git_commit": "0123456789abcdef"},
        },
        verdict=verdict,
        promotion={"action": "copied", "message": "mnist_cnn@production → v7 (copied)"},
        metrics=metrics,
        per_class=per_class,
        data_fingerprint="f" * 64,
    )


def test_the_card_carries_the_runs_real_figures(figures) -> None:
    metrics, per_class, verdict = figures
    card = _card(figures)
    assert card.startswith("# mnist_cnn v7 — MNIST handwritten-digit classifier")
    assert f"Test accuracy **{metrics['test_accuracy']:.4f}**" in card
    assert f"| test_macro_f1 | {metrics['test_macro_f1']:.4f} |" in card
    for row in per_class:  # every digit's real precision, recall, F1 and support
        line = (
            f"| {row['digit']} | {row['precision']:.4f} | {row['recall']:.4f} | "
            f"{row['f1']:.4f} | {int(row['support']):,} |"
        )
        assert line in card, line
    assert sum(int(r["support"]) for r in per_class) == metrics["test_images"]
    assert f"`{'f' * 64}`" in card  # data fingerprint
    for check in verdict["checks"]:  # the gate's numbers, e.g. "test_accuracy 0.93 ≥ minimum"
        assert f"{check['check']}: {check['detail']}" in card
    assert "passed **True**" in card
    for lineage in ("v3 in `https://bot:***@sandbox.example`", "`abc123`", "`0123456789abcdef`"):
        assert lineage in card
    assert "## Intended input" in card and "## Known limits" in card
    assert "TensorSpec(float32, (-1, 28, 28))" in card
    assert model_card.DEPLOY_MARKER in card and "Not run yet" in card


def test_the_deploy_section_is_replaced_not_appended(figures) -> None:
    card = _card(figures)
    report = {
        "deployable": False,
        "checked_at": "2026-11-30T01:00:00+00:00",
        "fresh_env": {"env_manager": "uv", "loaded": False, "reason": "No module named 'x'"},
        "failures": ["the model does not load in its own environment: No module named 'x'"],
    }
    once = model_card.with_deploy_section(card, report)
    twice = model_card.with_deploy_section(once, {**report, "deployable": True, "failures": []})
    assert "**NOT DEPLOYABLE**" in once and "No module named 'x'" in once
    assert "Not run yet" not in once
    assert twice.count("## Deploy validation") == 1 and "**DEPLOYABLE**" in twice
    assert twice.split(model_card.DEPLOY_MARKER)[0] == card.split(model_card.DEPLOY_MARKER)[0]
    # A version without a card (registered before cards existed) gets the section alone.
    assert model_card.with_deploy_section("", report).lstrip().startswith(model_card.DEPLOY_MARKER)


PASSWORD = "sEcr3t@pAss-9"  # holds an "@", as passwords may


def _leaks(text: str) -> list[str]:
    return [piece for piece in (PASSWORD, *PASSWORD.split("@")) if piece in text]


def test_no_piece_of_a_registry_password_reaches_the_card_or_the_lineage_tags(monkeypatch):
    """Registry URIs with a password (someone put one there): the published card, the card
    the deploy rewrites and the production version's lineage tags show them redacted."""
    from mnist_pipeline.registry import promotion
    from mnist_pipeline.registry.config import Workspace

    sandbox, production = (
        f"https://bot:{PASSWORD}@sandbox.example",
        f"https://deployer:{PASSWORD}@prod.example",
    )
    published: dict[str, str] = {}  # the registry: version -> its description (the card)
    monkeypatch.setattr(model_card, "publish", lambda _ws, v, card: published.update({v: card}))
    monkeypatch.setattr(model_card, "read", lambda _ws, v: published.get(v, ""))
    candidate = {
        "model_name": "mnist_cnn", "version": "3", "run_id": "abc123", "registry_uri": sandbox,
        "model_sha256": "e" * 64, "tags": {"git_commit": "0123456789abcdef"},
    }  # fmt: skip
    card = model_card.publish_promoted(
        report={"version": "7", "action": "copied", "message": "mnist_cnn@production → v7"},
        candidate=candidate,
        verdict={"mode": "enabled", "passed": True, "promote": True, "checks": []},
        metrics={"test_accuracy": 0.99, "test_images": 10000},
        per_class=[{"digit": d, "precision": 1, "recall": 1, "f1": 1, "support": 1}
                   for d in range(10)],
        data_fingerprint="f" * 64,
        production={"tracking_uri": production, "model_name": "mnist_cnn", "alias": "production"},
    )  # fmt: skip
    deployed = model_card.record_deployment(
        {"deployable": True, "checked_at": "2026-11-30", "model": {"version": "7"}},
        {"registry_uri": production, "name": "mnist_cnn", "alias": "production"},
    )
    assert "`https://bot:***@sandbox.example`" in card
    assert "`https://deployer:***@prod.example`" in card
    for text in (card, deployed, published["7"]):
        assert _leaks(text) == []
    source = Workspace("sandbox", sandbox, sandbox, "mnist_cnn", "champion")
    tags = promotion.lineage_tags(source, {**candidate, "tags": {"origin": production}})
    assert _leaks(repr(tags)) == []
    assert tags["lineage.origin"] == "https://deployer:***@prod.example"
