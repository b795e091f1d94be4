"""The project's configuration loader: Kedro's ``OmegaConfigLoader``, with runtime parameters
merged once, key by key, over the merged environments.

Kedro merges ``--params`` into *each* layer (base, then the run's environment) and then lets
the environment replace base's top-level keys whole. A section the environment does not set
then arrives from the environment layer as the runtime parameters alone: with
``--env gcp --params monitoring.fail_on_drift=true``, ``monitoring`` became
``{"fail_on_drift": true}`` and the run was refused with its other keys "missing" (and an
override of a section the environment does set kept only the environment's keys, which is
right only by luck). Here the layers merge as Kedro documents it (an environment's
top-level key replaces base's) and the runtime parameters are merged last, key by key, into
the result: ``--params a.b=c`` changes ``a.b`` and nothing else, whatever the environment.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from kedro.config import OmegaConfigLoader
from omegaconf import OmegaConf

PARAMETERS = "parameters"


class ProjectConfigLoader(OmegaConfigLoader):
    """``OmegaConfigLoader`` whose runtime parameters override single keys of the result."""

    def __getitem__(self, key: str) -> dict[str, Any]:
        config = super().__getitem__(key)
        if key != PARAMETERS or not self.runtime_params or key in self.data:
            return config  # (a value set on the loader explicitly is returned as it is)
        merged = OmegaConf.unsafe_merge(OmegaConf.create(config), self.runtime_params)
        return OmegaConf.to_container(merged, resolve=True)  # type: ignore[return-value]

    def _merge_and_resolve(self, key: str, config_per_file: dict[Path, Any]) -> dict[str, Any]:
        """One layer's files merged and resolved; for parameters without the runtime ones
        (Kedro's own merges them into every layer), which :meth:`__getitem__` adds last."""
        if key != PARAMETERS or not self.runtime_params or not config_per_file:
            return super()._merge_and_resolve(key, config_per_file)
        merged = OmegaConf.unsafe_merge(*config_per_file.values())
        return OmegaConf.to_container(merged, resolve=True)  # type: ignore[return-value]
