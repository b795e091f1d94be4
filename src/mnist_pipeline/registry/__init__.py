"""MLflow specifics: workspaces from configuration, the logged model, the gate, promotion.

* :mod:`.config` — where a workspace's tracking store and registry live (embedded SQLite,
  ``mlflow server``, Databricks workspace or Unity Catalog), validated with clear errors.
* :mod:`.model` — the logged model: a pyfunc around the Keras model that takes
  MNIST-convention images (the contract).
* :mod:`.gate` — the quality gate (pure).
* :mod:`.store` — registry operations on one workspace.
* :mod:`.promotion` — copy a sandbox version to production, verify it, move the alias.
"""

from mnist_pipeline.registry.config import RegistryConfigError, Workspace
from mnist_pipeline.registry.gate import GateConfigError, GateRefusedError, decide
from mnist_pipeline.registry.store import (
    CopyMismatchError,
    RegistryError,
    RegistryUnreachableError,
)

__all__ = [
    "CopyMismatchError",
    "GateConfigError",
    "GateRefusedError",
    "RegistryConfigError",
    "RegistryError",
    "RegistryUnreachableError",
    "Workspace",
    "decide",
]
