"""Preprocessing: scale, split and shard the model input."""

from .nodes import outcome
from .pipeline import create_pipeline

__all__ = ["create_pipeline", "outcome"]
