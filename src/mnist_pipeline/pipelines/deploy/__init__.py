"""Deploy: validate the promoted model in a real model server before calling it deployable."""

from .nodes import outcome
from .pipeline import create_pipeline

__all__ = ["create_pipeline", "outcome"]
