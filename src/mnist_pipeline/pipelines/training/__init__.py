"""Training: the Keras CNN on the model input, in the configured mode."""

from .nodes import outcome
from .pipeline import create_pipeline

__all__ = ["create_pipeline", "outcome"]
