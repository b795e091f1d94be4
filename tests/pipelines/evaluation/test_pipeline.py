"""The evaluation and promotion pipelines' datasets and parameters are configured.

What a pipeline reads from outside and what it ends with (outputs no node of it reads)
need catalog entries, the latter with a kedro-viz layer: without one Kedro drops an end
product when the run ends. Datasets handed from node to node may stay in memory
(docs/extending.md).
"""

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
    for name in pipeline.inputs():
        if name.startswith("params:"):
            assert name.removeprefix("params:") in parameters, name
        else:
            assert name in catalog, f"{name} is read but not in the catalog"
    for name in pipeline.outputs():
        assert name in catalog, f"{name} is an end product but not in the catalog"
        assert catalog[name]["metadata"]["kedro-viz"]["layer"], name
