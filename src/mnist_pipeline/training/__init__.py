"""Training specifics: the Keras model, the four runner modes, the multi-worker fix.

Nodes call :func:`run_training` and never see Spark or ``tf.distribute``.
"""

from .model import build_core_model, with_preprocessing
from .runner import (
    MODES,
    TrainingLaunchError,
    TrainingResult,
    TrainingTimeoutError,
    check_launch,
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
    "load_trained_model",
    "run_training",
    "with_preprocessing",
]
