"""Deploy nodes: pick validation images, validate the model in a real server, report, decide.

The outside system is the point here, so one node hands the work to
:func:`mnist_pipeline.serving.validate_in_server` (registry → real server → HTTP);
the others are plain functions of data.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from typing import Any

import numpy as np

from mnist_pipeline import serving
from mnist_pipeline.pipelines import seeded_indices
from mnist_pipeline.redaction import redact
from mnist_pipeline.registry import model_card


class DeploymentRejectedError(RuntimeError):
    """The promoted model failed validation; the deployment report says why."""


def select_validation_batch(
    test_split: dict[str, np.ndarray], validation: dict[str, Any]
) -> dict[str, np.ndarray]:
    """A seeded random sample of ``num_images`` test images with their labels.

    Args:
        test_split: ``{"images": uint8 (N, 28, 28), "labels": uint8 (N,)}``.
        validation: ``num_images`` (capped at N) and ``seed``.
    """
    images, labels = test_split["images"], test_split["labels"]
    count = min(int(validation["num_images"]), len(images))
    if count < 1:
        raise ValueError(f"deploy_validation.num_images must be at least 1, found {count}")
    chosen = seeded_indices(len(images), count, int(validation.get("seed", 0)))
    return {"images": images[chosen], "labels": labels[chosen]}


def validate_production_model(
    validation_batch: dict[str, np.ndarray],
    model: dict[str, Any],
    validation: dict[str, Any],
    server: dict[str, Any],
    environment: dict[str, Any],
) -> dict[str, Any]:
    """Check ``models:/<name>@<alias>`` in its own fresh environment and in a real server.

    Never raises for a failed check: the report's ``failures`` say what failed, and
    :func:`approve_deployment` turns them into an error after the report is saved.
    """
    return serving.validate_in_server(
        model,
        validation_batch["images"],
        validation_batch["labels"],
        validation,
        server,
        environment=environment,
    )


def refusal_report(model: dict[str, Any], failure: str) -> dict[str, Any]:
    """The deployment report of a deploy that could not start (its store did not answer):
    not deployable, with the reason, so that no earlier report is mistaken for this run's.

    Args:
        model: ``deploy_model`` parameters (name, alias, registry URI).
        failure: what stopped it, one line.
    """

    return {
        "deployable": False,
        "failures": [f"the deploy did not start: {failure}"],
        "checked_at": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "model": {
            "name": model.get("name"),
            "alias": model.get("alias"),
            "registry_uri": redact(str(model.get("registry_uri", ""))),
        },
    }


def summarise_deployment(report: dict[str, Any]) -> str:
    """The deployment report as a short Markdown page for people."""
    model = report.get("model", {})
    verdict = "DEPLOYABLE" if report.get("deployable") else "NOT DEPLOYABLE"
    lines = [
        f"# Deployment validation: {verdict}",
        "",
        f"- model: `models:/{model.get('name')}@{model.get('alias')}` → version "
        f"{model.get('version', '?')} (`{model.get('model_uri', '?')}`)",
        f"- registry: `{model.get('registry_uri', '?')}`",
        f"- checked at: {report.get('checked_at', '?')} in {report.get('duration_s', '?')} s",
    ]
    if fresh := report.get("fresh_env"):
        lines.append(
            f"- own environment ({fresh.get('env_manager')}, requirements only): "
            + (
                f"loaded, {'reused' if fresh.get('reused') else 'built'} "
                f"({fresh.get('predict_s', fresh.get('build_and_predict_s'))} s), "
                f"{fresh.get('digits_differing_from_offline', '?')} of "
                f"{fresh.get('num_images')} digits differ from offline"
                if fresh.get("loaded")
                else f"did not load: {fresh.get('reason')}"
            )
        )
    if server := report.get("server"):
        lines.append(f"- server: {server['url']} (ready after {server['startup_s']} s)")
    if checks := report.get("validation"):
        gate = report.get("gate", {})
        lines += [
            "",
            "| check | result |",
            "|---|---|",
            f"| served accuracy on {checks['num_images']} test images | "
            f"{checks['served_accuracy']:.4f} (gate {gate.get('min_accuracy')}) |",
            f"| offline accuracy | {checks['offline_accuracy']:.4f} |",
            f"| digits differing from offline | {checks['digits_differing_from_offline']} |",
            f"| max abs probability difference | {checks['max_abs_probability_difference']:.2e} "
            f"(allowed {gate.get('atol')}) |",
        ]
    for name, figures in report.get("latency_ms", {}).items():
        if figures:
            lines.append(
                f"| latency {name.replace('_', ' ')} (ms) | p50 {figures['p50']}, "
                f"p95 {figures['p95']}, p99 {figures['p99']} over {figures['n']} requests |"
            )
    failures = report.get("failures", [])
    lines += ["", "## Failures" if failures else "All checks passed.", ""]
    lines += [f"- {failure}" for failure in failures]
    return "\n".join(lines).rstrip() + "\n"


def record_on_model_card(report: dict[str, Any], model: dict[str, Any]) -> str:
    """Write the report into the checked version's model card (its registry description)."""
    return model_card.record_deployment(report, model)


def approve_deployment(report: dict[str, Any], summary: str, card: str = "") -> None:
    """Refuse the deployment when any check failed (after the report was saved).

    ``summary`` and ``card`` are inputs only so that this node runs after both are written.

    Raises:
        DeploymentRejectedError: listing every failed check.
    """
    if not report.get("deployable"):
        model = report.get("model", {})
        reasons = "\n  - ".join(report.get("failures") or ["no checks ran"])
        raise DeploymentRejectedError(
            f"models:/{model.get('name')}@{model.get('alias')} (version "
            f"{model.get('version', '?')}) is not deployable:\n  - {reasons}\n"
            "See the deployment_report and deployment_summary datasets."
        )


def outcome(outputs: Mapping[str, Any]) -> str | None:
    """The stage's line in the run's log: DEPLOYABLE or NOT DEPLOYABLE, with the served
    accuracy, latency and failures (also when the stage then fails on them)."""
    report = outputs.get("deployment_report")
    if report is None:
        return None
    model = report.get("model", {})
    word = "DEPLOYABLE" if report.get("deployable") else "NOT DEPLOYABLE"
    uri = f"models:/{model.get('name')}@{model.get('alias')}"
    line = f"deploy: {word} — {uri} v{model.get('version', '?')}"
    if checks := report.get("validation"):
        line += (
            f": served accuracy {float(checks['served_accuracy']):.4f} on "
            f"{int(checks['num_images']):,} images"
        )
    single = (report.get("latency_ms") or {}).get("single_image") or {}
    if single.get("p50") is not None:
        line += f", single-image p50 {single['p50']} ms"
    if failures := report.get("failures"):
        line += f"; failed: {'; '.join(map(str, failures))}"
    return line
