"""Training specifics: the Keras model, the four runner modes, the multi-worker fix.

Nodes call :func:`run_training` and never see Spark or ``tf.distribute``.
"""

# TensorFlow before Keras: Keras imports TensorFlow half-way through its own import, and
# MLflow's pending autolog hook for tensorflow (kedro-mlflow's ``disable_autologging``)
# would then fire on a half-imported Keras ("Exception raised while enabling autologging
# for tensorflow: ... circular import"). Every project module that imports Keras imports
# TensorFlow first for the same reason.
import tensorflow  # noqa: F401  (isort: skip)

from .model import build_core_model, with_preprocessing
from .runner import (
    MODES,
    TrainingLaunchError,
    TrainingResult,
    TrainingTimeoutError,
    check_launch,
    check_session_launch,
    load_trained_model,
    run_training,
)

__all__ = [
    "MODES",
    "TrainingLaunchError",
    "TrainingResult",
    "TrainingTimeoutError",
    "build_core_model",
    "check_launch",
    "check_session_launch",
    "load_trained_model",
    "run_training",
    "with_preprocessing",
]
