"""Promotion: register in the sandbox, gate, copy to production, verify, move the alias."""

from .nodes import outcome
from .pipeline import create_pipeline

__all__ = ["create_pipeline", "outcome"]
