"""Batch scoring (production): score a folder of images or model-input shards on Spark."""

from .pipeline import create_pipeline

__all__ = ["create_pipeline"]
