"""Monitoring nodes: the drift reference (at deploy time) and the drift report.

Statistics live in :mod:`mnist_pipeline.monitoring.drift`; reading windows in
:mod:`mnist_pipeline.monitoring.window`. These nodes wire them and shape the report.
"""

from __future__ import annotations

import logging
from typing import Any

import numpy as np
from matplotlib.figure import Figure

from mnist_pipeline.monitoring.drift import (
    CLASS_FEATURE,
    CONTINUOUS_FEATURES,
    DRIFT,
    FEATURES,
    INSUFFICIENT,
    build_reference,
    compare,
    feature_values,
)
from mnist_pipeline.monitoring.window import (
    BATCH_SCORES,
    INFERENCE_LOG,
    PredictionSource,
    WindowError,
    window_features,
)
from mnist_pipeline.pipelines import seeded_indices
from mnist_pipeline.serving.model import predict_with_version

logger = logging.getLogger(__name__)


class DriftDetectedError(RuntimeError):
    """The window drifted and ``monitoring.fail_on_drift`` asks for a failing run."""


def compute_drift_reference(
    train_split: dict[str, np.ndarray],
    deployment_report: dict[str, Any],
    model: dict[str, Any],
    params: dict[str, Any],
) -> dict[str, Any]:
    """The deployed version's predictions on a seeded sample of training images, summarised.

    Runs in the deploy pipeline, after the validation: a version that is not deployable
    gets no reference (``{"skipped": ...}``, nothing stored).

    Args:
        train_split: the raw training split (``images`` uint8 (N, 28, 28), ``labels``).
        deployment_report: the deploy validation's report (pinned version, verdict).
        model: ``deploy_model`` (registry URI).
        params: ``drift_reference`` (``num_images``, ``seed``, ``bins``).
    """
    pinned = deployment_report.get("model", {})
    if not deployment_report.get("deployable"):
        return {"skipped": "the version is not deployable", "model": pinned}
    images = train_split["images"]
    chosen = seeded_indices(
        len(images), int(params.get("num_images", 10000)), int(params.get("seed", 0))
    )
    sample, count = images[chosen], len(chosen)
    model_uri = f"models:/{pinned['name']}/{pinned['version']}"
    probabilities = predict_with_version(str(model["registry_uri"]), model_uri, sample)
    reference = build_reference(
        feature_values(probabilities, sample), bins=int(params.get("bins", 10)), seed=0
    )
    reference["model"] = {"name": pinned["name"], "version": str(pinned["version"])}
    reference["images"] = f"{count} training images (seed {int(params.get('seed', 0))})"
    logger.info("Drift reference of %s: %d training images", model_uri, count)
    return reference


def drift_report(
    inference_log: PredictionSource,
    batch_scores: PredictionSource,
    reference: dict[str, Any],
    params: dict[str, Any],
) -> dict[str, Any]:
    """Compare the last ``window`` records of the chosen source with the reference.

    An empty or missing source, or fewer records than ``window``, is a verdict
    (``insufficient_data``) with a message, not a crash; malformed log records are skipped
    and counted (``skipped_records``). A source that cannot be read fails the run with a
    :class:`~mnist_pipeline.storage.StorageError` naming it and its setting.
    """
    source = {INFERENCE_LOG: inference_log, BATCH_SCORES: batch_scores}.get(params["source"])
    if source is None:
        raise ValueError(
            f"monitoring.source must be {INFERENCE_LOG} or {BATCH_SCORES}, "
            f"found {params['source']!r}"
        )
    size = int(params["window"])
    if size < 1000:
        raise ValueError(f"monitoring.window must be at least 1000 records, found {size}")
    model = reference.get("model", {})
    head = {"source": source.kind, "path": source.path, "window": size, "model": model}
    try:
        frame = source.window(size, str(model.get("version")) if model else None)
    except WindowError as exc:
        return {**head, "verdict": INSUFFICIENT, "message": str(exc), "records": 0}
    skipped = int(frame.attrs.get("skipped", 0))
    note = f" ({skipped} malformed records skipped)" if skipped else ""
    if len(frame) < size:
        return {
            **head,
            "verdict": INSUFFICIENT,
            "records": len(frame),
            "skipped_records": skipped,
            "message": f"{source.path} holds {len(frame)} live records of version "
            f"{model.get('version')}, fewer than the window of {size}{note}",
        }
    report = compare(reference, window_features(frame), params["thresholds"])
    message = _verdict_line(report) + note
    return {**head, **report, "skipped_records": skipped, "message": message}


def _verdict_line(report: dict[str, Any]) -> str:
    if report["verdict"] != DRIFT:
        return f"no drift in {report['records']} records"
    features = report["features"]
    moved = ", ".join(
        f"{name} (PSI {features[name]['psi']:.3f} > {features[name]['threshold']})"
        for name in report["drifted_features"]
    )
    return f"DRIFT in {report['records']} records: {moved}"


def summarise_drift(report: dict[str, Any]) -> str:
    """The report as a short Markdown page; its verdict line is also logged."""
    model = report.get("model", {})
    lines = [
        f"# Drift report: {report['verdict'].upper().replace('_', ' ')}",
        "",
        f"- {report['message']}",
        f"- source: {report['source']} `{report['path']}`, window {report['window']} records",
        f"- reference: models:/{model.get('name')}/{model.get('version')}",
    ]
    if "features" in report:
        lines += [
            "",
            "| feature | PSI | threshold | drifted | KS statistic |",
            "|---|---|---|---|---|",
        ]
        for name in FEATURES:
            entry = report["features"][name]
            lines.append(
                f"| {name} | {entry['psi']:.4f} | {entry['threshold']} | "
                f"{'yes' if entry['drifted'] else 'no'} | {entry.get('ks_statistic', '')} |"
            )
    (logger.warning if report["verdict"] == DRIFT else logger.info)(
        "Drift monitoring: %s", report["message"]
    )
    return "\n".join(lines) + "\n"


def drift_metrics(report: dict[str, Any]) -> dict[str, dict[str, float]]:
    """PSI per feature, the verdict (1 = drift) and the records used and skipped, in
    kedro-mlflow's metrics format."""
    values = {
        "drift": 1.0 if report["verdict"] == DRIFT else 0.0,
        "records": report["records"],
        "skipped_records": report.get("skipped_records", 0),
    }
    for name, entry in report.get("features", {}).items():
        values[f"psi.{name}"] = entry["psi"]
    return {name: {"value": float(value), "step": 0} for name, value in values.items()}


def plot_drift(report: dict[str, Any]) -> Figure:
    """Reference vs window per feature (bars over the reference's bins), drifted in red."""
    figure = Figure(figsize=(9, 5), dpi=80, layout="constrained")
    axes = figure.subplots(2, 3).ravel()
    if "features" not in report:
        for axis in axes:
            axis.axis("off")
        axes[0].text(0, 0.5, report["message"], wrap=True, fontsize=10)
        figure.suptitle(f"Drift report: {report['verdict']}")
        return figure
    for axis, name in zip(axes, FEATURES, strict=True):
        entry = report["features"][name]
        reference, window = np.asarray(entry["reference"]), np.asarray(entry["window"])
        positions = np.arange(len(reference))
        axis.bar(positions - 0.2, reference, 0.4, label="reference", color="#8da0cb")
        axis.bar(
            positions + 0.2,
            window,
            0.4,
            label="window",
            color="#d62728" if entry["drifted"] else "#66c2a5",
        )
        axis.set_title(f"{name}\nPSI {entry['psi']:.3f} (limit {entry['threshold']})", fontsize=9,
                       color="#d62728" if entry["drifted"] else "black")  # fmt: skip
        axis.set_xticks(positions if name == CLASS_FEATURE else [])
        axis.tick_params(labelsize=7)
        if name in CONTINUOUS_FEATURES:
            axis.set_xlabel("reference deciles", fontsize=7)
    axes[0].legend(fontsize=7)
    figure.suptitle(report["message"], fontsize=10)
    return figure


def check_drift(report: dict[str, Any], summary: str, params: dict[str, Any]) -> None:
    """Fail the run on drift when ``monitoring.fail_on_drift`` is true (for schedulers).

    Takes the summary only to run after the report, summary and plot are saved.

    Raises:
        DriftDetectedError: naming the drifted features and their PSI.
    """
    if report["verdict"] == DRIFT and params.get("fail_on_drift"):
        raise DriftDetectedError(
            f"{report['message']}. See the drift_report and drift_summary datasets "
            "(monitoring.fail_on_drift is true)."
        )
