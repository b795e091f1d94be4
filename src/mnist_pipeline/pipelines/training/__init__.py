"""Training: the Keras CNN on the model input, in the configured mode."""

from .pipeline import create_pipeline

__all__ = ["create_pipeline"]
