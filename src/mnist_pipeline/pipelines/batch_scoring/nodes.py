"""Batch-scoring nodes: pin the model, run the Spark job, summarise.

The Spark job is the outside system here (executors read the inputs and write the
Parquet parts themselves, the driver commits the manifest), so one node hands the work
to :func:`mnist_pipeline.scoring.spark.run_scoring_job`; the others are plain functions
of the manifest it returns.
"""

from __future__ import annotations

import logging
from typing import Any

from mnist_pipeline import storage
from mnist_pipeline.scoring.inputs import list_inputs
from mnist_pipeline.scoring.model import PinnedModel, pin_model
from mnist_pipeline.scoring.output import check_output
from mnist_pipeline.scoring.spark import active_spark, run_scoring_job

logger = logging.getLogger(__name__)


def pin_scoring_model(model: dict[str, Any]) -> dict[str, str]:
    """Resolve ``models:/<name>@<alias>`` to the version the whole job uses.

    Args:
        model: ``deploy_model`` parameters (``registry_uri``, ``name``, ``alias``).
    """
    pinned = pin_model(str(model["name"]), str(model["alias"]), str(model["registry_uri"]))
    logger.info(
        "Batch scoring with %s (models:/%s@%s)", pinned.model_uri, pinned.name, pinned.alias
    )
    return pinned.to_dict()


def score_batch(
    pinned: dict[str, str], model: dict[str, Any], scoring: dict[str, Any]
) -> dict[str, Any]:
    """List the inputs, score them on Spark, write the output; the output's manifest.

    Args:
        pinned: from :func:`pin_scoring_model`.
        model: ``deploy_model`` (the registry URI to download the pinned version from).
        scoring: ``batch_scoring`` parameters (``input``, ``output``, batch sizes).
    """
    source = scoring["input"]
    target = scoring["output"]
    # Both locations are checked before Spark starts: a bad one names its setting.
    items = list_inputs(
        str(source["path"]), source.get("storage_options") or {}, source.get("kind", "auto")
    )
    check_output(storage.absolute(str(target["path"])), target.get("storage_options") or {})
    logger.info("Scoring %d input item(s) from %s", len(items), source["path"])
    return run_scoring_job(
        active_spark(),
        items,
        PinnedModel(**pinned),
        str(model["registry_uri"]),
        output=str(target["path"]),
        batch_size=int(scoring.get("batch_size", 256)),
        images_per_partition=int(scoring.get("images_per_partition", 20000)),
        input_options=source.get("storage_options") or {},
        output_options=target.get("storage_options") or {},
        source=str(source["path"]),
    )


def summarise_batch_scoring(manifest: dict[str, Any]) -> str:
    """The job's summary for people: scored, failed, per digit; also logged."""
    summary = manifest["summary"]
    model = manifest["model"]
    digits = ", ".join(f"{digit}: {count}" for digit, count in summary["per_digit"].items())
    lines = [
        f"Batch scoring: {summary['scored']} scored, {summary['failed']} failed "
        f"({summary['rows']} rows) with models:/{model['name']}/{model['version']} "
        f"in {manifest['duration_s']} s ({manifest['images_per_s']} images/s, "
        f"{manifest['partitions']} partitions)",
        f"  per digit: {digits}",
    ]
    if "accuracy" in summary:
        lines.append(
            f"  accuracy on {summary['labelled']} labelled images: {summary['accuracy']:.4f}"
        )
    lines.append(f"  output: {manifest['output']} (manifest written last)")
    text = "\n".join(lines) + "\n"
    logger.info("%s", text.rstrip())
    return text


def batch_scoring_metrics(manifest: dict[str, Any]) -> dict[str, dict[str, float]]:
    """Counts (and accuracy when labels are known) in kedro-mlflow's metrics format."""
    summary = manifest["summary"]
    values = {
        "scored": summary["scored"],
        "failed": summary["failed"],
        "images_per_s": manifest["images_per_s"] or 0.0,
        **{f"digit_{digit}": count for digit, count in summary["per_digit"].items()},
    }
    if "accuracy" in summary:
        values["accuracy"] = summary["accuracy"]
    return {name: {"value": float(value), "step": 0} for name, value in values.items()}
