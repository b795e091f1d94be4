"""Project pipelines: one per stage, discovered from ``pipelines/<name>/``."""

from __future__ import annotations

# No stage imports TensorFlow when its pipeline is built: `kedro viz`, the data stages and
# the project's commands start without it (several seconds); the training code imports it
# when a node runs (see mnist_pipeline.training).
from kedro.framework.project import find_pipelines
from kedro.pipeline import Pipeline

# The sandbox lifecycle, in order. ``deploy`` (the production side) is not part
# of it: it runs in the production workspace with ``--pipelines deploy``.
SANDBOX_STAGES = ("ingestion", "preprocessing", "training", "evaluation", "promotion")


def namespaced(name: str, pipeline: Pipeline) -> Pipeline:
    """Put every node of a stage's pipeline in the namespace ``<name>``.

    kedro-viz draws each namespace as one collapsible box per stage, and
    ``kedro run --namespaces <name>`` selects a stage by it. Only node names are
    prefixed (``ingestion.validate_train_split``): dataset and parameter names
    stay exactly as in the catalog and ``parameters_<name>.yml``. A stage whose
    nodes already carry the namespace is returned unchanged.
    """
    if all(node.namespace == name for node in pipeline.nodes):
        return pipeline
    return Pipeline(pipeline, namespace=name, prefix_datasets_with_namespace=False)


def register_pipelines() -> dict[str, Pipeline]:
    """Register every pipeline under ``pipelines/`` plus ``__default__``.

    Each stage is namespaced by its name (see :func:`namespaced`).
    ``__default__`` (what a bare ``kedro run`` runs) is the sandbox lifecycle:
    the stages of :data:`SANDBOX_STAGES` that exist. Every stage can also be run
    alone with ``kedro run --pipelines <name>``.
    """
    pipelines = {
        name: namespaced(name, pipeline)
        for name, pipeline in find_pipelines(raise_errors=True).items()
    }
    pipelines["__default__"] = sum(
        (pipelines[name] for name in SANDBOX_STAGES if name in pipelines), Pipeline([])
    )
    return pipelines
