"""Ingestion: fetch, verify and describe the raw MNIST files."""

from .nodes import outcome
from .pipeline import create_pipeline

__all__ = ["create_pipeline", "outcome"]
