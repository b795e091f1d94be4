"""Project settings. See https://docs.kedro.org/en/stable/kedro_project_setup/settings.html."""

from __future__ import annotations

import os
import re
import warnings

from mnist_pipeline.runtime_env import apply_defaults

# Before TensorFlow, MLflow or Spark load (pipelines, hooks, kedro-mlflow): quiet TF's C++
# start-up lines and put this venv's bin/ on PATH (tools that shell out find mlflow, uvicorn).
apply_defaults()

# kedro-mlflow's KedroPipelineModel (a PythonModel without type hints) makes MLflow say
# "Add type hints to the `predict` method" when kedro-mlflow is imported: theirs, dropped
# for that import only (the project's own pyfunc is annotated, so MLflow stays free to warn
# about it). A filter cannot do it: MLflow wraps the check in its own
# ``simplefilter("once")``, so the import's warnings are recorded instead and every other
# one is shown as usual.
_KEDRO_MLFLOW_TYPE_HINTS = re.compile(r"(\x1b\[\d+m)?Add type hints to the `predict` method")
with warnings.catch_warnings(record=True) as _caught:
    import kedro_mlflow.mlflow  # noqa: F401
for _warning in _caught:
    if not _KEDRO_MLFLOW_TYPE_HINTS.match(str(_warning.message)):
        warnings.showwarning(
            _warning.message, _warning.category, _warning.filename, _warning.lineno
        )

# ruff: noqa: E402  (the defaults above must come before the imports below)
from mnist_pipeline.config_loader import ProjectConfigLoader
from mnist_pipeline.hooks import SparkHooks
from mnist_pipeline.parameters.hook import ParametersValidationHook
from mnist_pipeline.registry.hooks import MlflowLocalStoreHook, MlflowRunHook, RedactedParamsHook
from mnist_pipeline.run_summary import RunSummaryHook

# kedro and kedro-mlflow call OmegaConf's old resolver API; the deprecation
# notice is theirs to fix and only buries the run's own output.
warnings.filterwarnings("ignore", message=r"register_new_resolver\(\) is deprecated")


def _env(name: str, default: str | None = None) -> str | None:
    """``${env:NAME, default}``: read an environment variable in any config file.

    Kedro only enables ``oc.env`` for credentials; the project lets every file
    read environment variables so that *where* things live (data source, MLflow
    URIs, Spark master) can be switched without editing configuration.
    """
    return os.environ.get(name, default)


# OmegaConfigLoader, with `--params a.b=c` merged key by key over the merged environments.
CONFIG_LOADER_CLASS = ProjectConfigLoader
CONFIG_LOADER_ARGS = {
    "base_env": "base",
    "default_run_env": "local",
    "custom_resolvers": {"env": _env},
    # spark.yml: the training stage's Spark session (read by hooks.SparkHooks).
    "config_patterns": {"spark": ["spark*", "spark*/**"]},
}

# Project hooks (kedro-mlflow registers its own through its entry point).
HOOKS = (
    MlflowLocalStoreHook(),
    ParametersValidationHook(),  # before any node, before Spark starts
    RedactedParamsHook(),  # before kedro-mlflow logs parameters
    SparkHooks(),
    MlflowRunHook(),  # run name "<env> · <pipeline> · <commit>", experiment tags
    RunSummaryHook(),  # one INFO line per finished stage, a summary at the end
)
