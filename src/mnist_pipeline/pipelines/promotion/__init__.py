"""Promotion: register in the sandbox, gate, copy to production, verify, move the alias."""

from .pipeline import create_pipeline

__all__ = ["create_pipeline"]
