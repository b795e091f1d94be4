"""Drift monitoring (production): a window of predictions against the version's reference."""

from .pipeline import create_pipeline

__all__ = ["create_pipeline"]
