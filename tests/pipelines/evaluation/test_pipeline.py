"""Every dataset the evaluation and promotion pipelines read or write is in the catalog."""

from __future__ import annotations

import pytest
from kedro.config import OmegaConfigLoader

from mnist_pipeline.pipelines import evaluation, promotion
from mnist_pipeline.settings import CONFIG_LOADER_ARGS
from tests.conftest import PROJECT_ROOT


@pytest.mark.parametrize("module", [evaluation, promotion])
def test_datasets_and_parameters_are_configured(module):
    loader = OmegaConfigLoader(str(PROJECT_ROOT / "conf"), env="azure", **CONFIG_LOADER_ARGS)
    catalog, parameters = loader["catalog"], loader["parameters"]
    pipeline = module.create_pipeline()
    for name in pipeline.datasets():
        if name.startswith("params:"):
            assert name.removeprefix("params:") in parameters, name
        else:
            assert name in catalog, f"{name} is not in the catalog"
