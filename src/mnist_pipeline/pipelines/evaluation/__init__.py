"""Evaluation: test-set metrics, per-class report and plots of the trained model."""

from .nodes import outcome
from .pipeline import create_pipeline

__all__ = ["create_pipeline", "outcome"]
