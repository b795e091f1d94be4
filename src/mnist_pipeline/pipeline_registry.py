"""Project pipelines: one per stage, discovered from ``pipelines/<name>/``."""

from __future__ import annotations

from kedro.framework.project import find_pipelines
from kedro.pipeline import Pipeline

# The sandbox lifecycle, in order. ``deploy`` (the production side) is not part
# of it: it runs in the production workspace with ``--pipeline deploy``.
SANDBOX_STAGES = ("ingestion", "preprocessing", "training", "evaluation", "promotion")


def register_pipelines() -> dict[str, Pipeline]:
    """Register every pipeline under ``pipelines/`` plus ``__default__``.

    ``__default__`` (what a bare ``kedro run`` runs) is the sandbox lifecycle:
    the stages of :data:`SANDBOX_STAGES` that exist. Every stage can also be run
    alone with ``kedro run --pipeline <name>``.
    """
    pipelines = find_pipelines(raise_errors=True)
    pipelines["__default__"] = sum(
        (pipelines[name] for name in SANDBOX_STAGES if name in pipelines), Pipeline([])
    )
    return pipelines
