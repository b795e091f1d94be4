"""Expected failures: a known, explained cause gets its message and the fix, not a traceback.

A run that stops because the source is offline, the gate refused the model or a setting is
wrong has already said why in one line; the 200-line traceback around it only hides that
line. :func:`expected_failure` recognises those exceptions (by class, anywhere in the
exception's cause chain, without importing the modules that define them) and
:func:`report` prints ``Error: <message>`` and ``Fix: <what to do>``. Anything else is a bug
or an unknown condition and keeps its full traceback.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass
from typing import TextIO

# Exit status of an expected failure (click's own usage errors exit with 2).
EXIT_EXPECTED = 1

# "<module>.<class>" -> the fix. Subclasses match too (the MRO is walked).
EXPECTED: dict[str, str] = {
    "kedro.io.core.DatasetError": (
        "check the dataset's location (conf/<env>/catalog*.yml, globals.yml); offline, point "
        "MNIST_SOURCE at a folder holding the four MNIST .gz files"
    ),
    "mnist_pipeline.registry.gate.GateRefusedError": (
        "nothing was promoted; train a better model, or MNIST_GATE_MODE=dry_run to judge "
        "without failing the run"
    ),
    "mnist_pipeline.registry.gate.GateConfigError": (
        "fix promotion.gate in parameters_promotion.yml"
    ),
    "mnist_pipeline.registry.probe.ProbeSettingsError": (
        "set MNIST_REGISTRY_PROBE_TIMEOUT_S (≥ 1) and MNIST_REGISTRY_PROBE_RETRIES (≥ 0) to whole "
        "numbers, or unset them for the defaults"
    ),
    "mnist_pipeline.registry.config.RegistryConfigError": (
        "fix the MLflow URIs (mlflow_stores in globals.yml, MLFLOW_<WORKSPACE>_* variables)"
    ),
    "mnist_pipeline.registry.store.RegistryUnreachableError": (
        "check the store's URI (MLFLOW_<WORKSPACE>_TRACKING_URI) and that its server is up; "
        "run again once it answers"
    ),
    "mnist_pipeline.registry.store.CopyMismatchError": (
        "the production alias was not moved; run the promotion again, and if it repeats, "
        "compare the two stores' MLflow versions"
    ),
    "mnist_pipeline.pipelines.deploy.nodes.DeploymentRejectedError": (
        "the model was NOT DEPLOYABLE; the report says which check failed "
        "(data/08_reporting/deployment_summary.md)"
    ),
    "mnist_pipeline.training.runner.TrainingLaunchError": (
        "change the setting the message names (training.distribution.*, spark.yml)"
    ),
    "mnist_pipeline.training.runner.TrainingTimeoutError": (
        "give the barrier job more time (training.distribution) or the cluster more slots"
    ),
    "mnist_pipeline.parameters.ParametersError": (
        "fix the parameter named above (conf/<env>/parameters_*.yml or --params)"
    ),
    "mnist_pipeline.storage.StorageError": "check the storage URL and its credentials",
    "mnist_pipeline.scoring.inputs.ScoringInputError": (
        "point batch_scoring.input.path (BATCH_SCORING_INPUT) at a folder, glob or model-input "
        "split that holds files"
    ),
    "mnist_pipeline.scoring.output.ScoringOutputError": (
        "point batch_scoring.output.path (BATCH_SCORING_OUTPUT) at a folder or object prefix"
    ),
    "mnist_pipeline.scoring.output.ConcurrentOutputError": (
        "the other job's output stands; run one batch-scoring job per output at a time, then "
        "run this one again"
    ),
    "mnist_pipeline.registry.store.ModelResolutionError": (
        "check deploy_model (name, alias) and the production registry URI"
    ),
    "mnist_pipeline.serving.model.ModelLoadError": (
        "the registered model could not be loaded; promote it again from the sandbox"
    ),
    "mnist_pipeline.serving.server.ServerStartError": (
        "choose another --port / MNIST_SERVING_PORT, or stop what holds it"
    ),
    "mnist_pipeline.serving.inference_log.InferenceLogError": (
        "fix inference_log.path (MNIST_INFERENCE_LOG) or the folder's permissions; an empty path "
        "turns the log off"
    ),
    "mnist_pipeline.versions.UnsupportedVersionError": (
        "install the versions the message names (requirements.lock pins the tested ones)"
    ),
    "kedro.config.abstract_config.MissingConfigException": (
        "add the configuration file named above, or check --env"
    ),
    "omegaconf.errors.InterpolationResolutionError": "fix the ${...} reference named above",
}


@dataclass(frozen=True)
class ExpectedFailure:
    """An exception the project knows, with its fix."""

    exception: BaseException
    message: str
    fix: str


def _chain(exc: BaseException):
    seen: set[int] = set()
    while exc is not None and id(exc) not in seen:
        seen.add(id(exc))
        yield exc
        exc = exc.__cause__ or exc.__context__


def _qualified_names(exc: BaseException) -> list[str]:
    return [f"{cls.__module__}.{cls.__qualname__}" for cls in type(exc).__mro__]


def expected_failure(exc: BaseException) -> ExpectedFailure | None:
    """The expected failure ``exc`` is (or was caused by), or ``None`` for anything else."""
    for link in _chain(exc):
        for name in _qualified_names(link):
            if name in EXPECTED:
                message = str(link).strip() or type(link).__name__
                return ExpectedFailure(link, f"{type(link).__name__}: {message}", EXPECTED[name])
    return None


def report(failure: ExpectedFailure, stream: TextIO | None = None) -> None:
    """Print the failure's message and its fix (no traceback)."""
    stream = stream or sys.stderr
    print(f"Error: {failure.message}", file=stream)
    print(f"Fix: {failure.fix}", file=stream)
