"""Parameters checked once before a run: typos, ranges, choices; only the stages being run."""

from __future__ import annotations

import copy
import re

import pytest
from kedro.config import OmegaConfigLoader
from kedro.pipeline import Node, Pipeline

from mnist_pipeline.parameters import SCHEMAS, ParametersError, keys_read_by, schemas, validate
from mnist_pipeline.parameters.hook import ParametersValidationHook
from mnist_pipeline.settings import CONFIG_LOADER_ARGS
from tests.conftest import PROJECT_ROOT


def _parameters(env: str) -> dict:
    loader = OmegaConfigLoader(str(PROJECT_ROOT / "conf"), env=env, **CONFIG_LOADER_ARGS)
    return dict(loader["parameters"])


@pytest.fixture(scope="module")
def base() -> dict:
    return _parameters("local")


@pytest.mark.parametrize("env", ["local", "azure", "gcp"])
def test_every_environments_parameters_are_valid(env):
    validate(_parameters(env), SCHEMAS)


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (("training", "epochs", -1), "training.epochs = -1: input should be greater than or"),
        (("training", "batch_size", 0), "training.batch_size = 0: input should be greater than"),
        (("training", "mode", "gpu"), "training.mode = 'gpu': input should be 'single_node', "),
        (
            ("promotion.gate", "min_acuracy", 0.9),
            "promotion.gate.min_acuracy = 0.9: unknown key; allowed here: mode, metric, "
            "min_accuracy, tolerance, fail_run_on_refusal",
        ),
        # the gate's own (from tests/registry/test_gate.py: the schema is their one check)
        (("promotion.gate", "mode", "on"), "promotion.gate.mode = 'on': input should be 'enabled'"),
        (("promotion.gate", "min_accuracy", 1.5), "promotion.gate.min_accuracy = 1.5: input"),
        (("promotion.gate", "tolerance", -0.1), "promotion.gate.tolerance = -0.1: input should"),
        (("promotion.gate", "min_accuracy", "high"), "min_accuracy = 'high': input should be a"),
        # promotion.production's URIs and names, checked before the run, not at promotion
        (("promotion.production", "alias", "latest"), "promotion.production.alias: 'latest' is"),
        (
            ("promotion.production", "tracking_uri", "/tmp/mlruns"),
            "tracking_uri: '/tmp/mlruns' is a file store",
        ),
        (("promotion.production", "tracking_uri", ""), "promotion.production.tracking_uri = '':"),
        # a misspelt key of the server's and the inference log's settings stops the run
        (
            ("serving", "max_bach_size", 8),
            "serving.max_bach_size = 8: unknown key; allowed here: host, port",
        ),
        (
            ("inference_log", "pixel_sample_rate", 0.1),
            "inference_log.pixel_sample_rate = 0.1: unknown key",
        ),
        (("evaluation", "batch_size", "big"), "evaluation.batch_size = 'big': input should be"),
        (("preprocessing", "validation_size", 0), "preprocessing.validation_size = 0: input"),
        (
            ("deploy_validation", "min_acuracy", 0.99),
            "deploy_validation.min_acuracy = 0.99: unknown key; allowed here: num_images, seed, "
            "min_accuracy, atol",
        ),
        (("deploy_validation", "num_images", -5), "deploy_validation.num_images = -5: input"),
        (("serving", "port", "abc"), "serving.port = 'abc': input should be a valid integer"),
        (("serving", "port", 70000), "serving.port = 70000: input should be less than or equal"),
        (("inference_log", "pixels_sample_rate", 2), "inference_log.pixels_sample_rate = 2: "),
        (("deploy_environment", "env_manager", "pip"), "deploy_environment.env_manager = 'pip'"),
    ],
)
def test_a_bad_value_names_the_key_the_value_and_what_is_allowed(base, change, message):
    section, key, value = change
    parameters = copy.deepcopy(base)
    target = parameters
    for part in section.split("."):
        target = target[part]
    target[key] = value
    with pytest.raises(ParametersError) as error:
        validate(parameters, SCHEMAS)
    assert message in str(error.value)
    assert len(str(error.value).splitlines()) == 2  # the heading and exactly this problem


# (where, key, a value that cannot work, the smallest (or largest) value that can)
BOUNDS = [
    ("training", "epochs", 0, 1),
    ("training", "batch_size", 0, 1),
    ("training.presets.accurate", "epochs", 0, 1),
    ("training.model", "dropout", 1.0, 0.99),
    ("training.model", "dense_units", -1, 0),
    ("training.model.conv_blocks.0", "filters", 0, 1),
    ("training.model.conv_blocks.0", "kernel_size", 0, 1),
    ("training.optimizer", "learning_rate", 0.0, 1e-6),
    ("training.optimizer", "warmup_fraction", 1.0, 0.99),
    ("training.distribution", "num_slots", 0, 1),
    ("training.distribution", "timeout_s", 0, 0.5),
    ("training.distribution", "max_restarts", -1, 0),
    ("preprocessing", "validation_size", 0, 0.1),
    ("preprocessing.augmentation", "copies", 0, 1),
    ("evaluation", "batch_size", 0, 1),
    ("promotion.gate", "min_accuracy", 1.01, 1.0),
    ("promotion.gate", "tolerance", -0.01, 0.0),
    ("promotion.verify", "num_images", 0, 1),
    ("batch_scoring", "batch_size", 0, 1),
    ("batch_scoring", "images_per_partition", 0, 1),
    ("monitoring", "window", 999, 1000),
    ("monitoring.thresholds", "bbox_width", 0.0, 0.01),
    ("drift_reference", "bins", 1, 2),
    ("deploy_validation", "min_accuracy", 1.01, 1.0),
    ("deploy_validation", "startup_timeout_s", 0, 1),
    ("serving", "max_batch_size", 0, 1),
    ("inference_log", "max_bytes", 0, 1),
]


@pytest.mark.parametrize(("where", "key", "nonsense", "edge"), BOUNDS)
def test_values_that_cannot_work_are_refused_the_edge_values_accepted(
    base, where, key, nonsense, edge
):
    """Zero epochs, a dropout of 1, a 999-record window...: refused, naming the key; the
    value right at the edge of what works is accepted."""
    for value, refused in ((nonsense, True), (edge, False)):
        parameters = copy.deepcopy(base)
        target = parameters
        for part in where.split("."):
            target = target[int(part)] if part.isdigit() else target[part]
        target[key] = value
        top = where.split(".")[0]
        if not refused:
            validate(parameters, [top])
            continue
        with pytest.raises(ParametersError, match=rf"{re.escape(where)}\.{key} = {value!r}:"):
            validate(parameters, [top])


def test_a_password_in_a_bad_uri_value_is_not_repeated(base):
    parameters = copy.deepcopy(base)
    parameters["promotion"]["production"]["tracking_uri"] = "http://u:hunter2@h"
    parameters["promotion"]["production"]["bogus"] = "http://u:hunter2@h"
    with pytest.raises(ParametersError) as error:
        validate(parameters, ["promotion"])
    assert "hunter2" not in str(error.value) and "http://u:***@h" in str(error.value)


def test_the_schemas_choices_are_the_codes_own():
    from mnist_pipeline.training import model, runner

    fields = schemas.Training.model_fields
    assert set(fields["mode"].annotation.__args__) == set(runner.MODES)
    optimizer = schemas.Optimizer.model_fields
    assert set(optimizer["schedule"].annotation.__args__) == set(model.SCHEDULES)
    assert set(optimizer["name"].annotation.__args__) == set(model._OPTIMIZERS)


class _Catalog:
    def __init__(self, parameters: dict) -> None:
        self.parameters = parameters

    def load(self, name: str) -> dict:
        assert name == "parameters"
        return self.parameters


def _pipeline(*inputs: str) -> Pipeline:
    return Pipeline([Node(lambda *a: None, list(inputs), None, name=f"n{i}") for i in (1,)])


def test_the_hook_checks_only_the_stages_of_the_pipeline_being_run(base):
    parameters = copy.deepcopy(base)
    parameters["training"]["epochs"] = -1
    hook = ParametersValidationHook()
    # deploy (and kedro serve, which runs no pipeline) never read training's parameters
    deploy = _pipeline("params:deploy_model", "params:serving", "mnist_t10k_raw")
    hook.before_pipeline_run({}, deploy, _Catalog(parameters))
    with pytest.raises(ParametersError, match=r"training\.epochs = -1"):
        hook.before_pipeline_run({}, _pipeline("params:training.model"), _Catalog(parameters))
    assert keys_read_by(["params:training.model", "x", "params:promotion"]) == {
        "training",
        "promotion",
    }


def test_the_deploy_pipeline_has_its_validation_settings_checked_before_any_node(base):
    """A misspelt deploy_validation key used to be ignored (the run went ahead with the
    default) and num_images = -5 failed late with a traceback."""
    from mnist_pipeline.pipelines.deploy import create_pipeline

    parameters = copy.deepcopy(base)
    parameters["deploy_validation"]["min_acuracy"] = parameters["deploy_validation"].pop(
        "min_accuracy"
    )
    parameters["deploy_validation"]["num_images"] = -5
    parameters["serving"]["max_bach_size"] = 8
    hook = ParametersValidationHook()
    with pytest.raises(ParametersError) as error:
        hook.before_pipeline_run({}, create_pipeline(), _Catalog(parameters))
    message = str(error.value)
    assert "deploy_validation.min_acuracy = 0.97: unknown key" in message
    assert "deploy_validation.min_accuracy: missing" in message
    assert "deploy_validation.num_images = -5: input should be greater than or equal to 1" in (
        message
    )
    assert "serving.max_bach_size = 8: unknown key; allowed here: host, port," in message
