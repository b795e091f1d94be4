"""Check the stages' parameters once, before any node runs: typos, ranges, choices.

:data:`SCHEMAS` maps a top-level parameters key (``training``, ``promotion``...) to the
pydantic model of :mod:`.schemas` that describes it. :func:`validate` checks the keys that a
pipeline's nodes read (``params:<key>...``) and that have a model; the hook of :mod:`.hook`
calls it in ``before_pipeline_run``, so ``kedro run --pipelines deploy`` never checks
training's parameters and ``kedro serve`` (no pipeline) checks none.

Extend it by adding a model to :mod:`.schemas` and a line to :data:`SCHEMAS`.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from pydantic import BaseModel, ValidationError

from mnist_pipeline.parameters import operations, schemas
from mnist_pipeline.redaction import redact

SCHEMAS: dict[str, type[BaseModel]] = {
    "ingestion": schemas.Ingestion,
    "preprocessing": schemas.Preprocessing,
    "training": schemas.Training,
    "evaluation": schemas.Evaluation,
    "promotion": schemas.Promotion,
    "batch_scoring": operations.BatchScoring,
    "monitoring": operations.Monitoring,
    "drift_reference": operations.DriftReference,
    "deploy_model": operations.DeployModel,
    "deploy_validation": operations.DeployValidation,
    "deploy_environment": operations.DeployEnvironment,
    "serving": operations.Serving,
    "inference_log": operations.InferenceLog,
}


class ParametersError(ValueError):
    """Parameters that cannot work; the message names each key, its value, what is allowed."""


def keys_read_by(input_names: Iterable[str]) -> set[str]:
    """Top-level parameter keys read by nodes with these inputs (``params:a.b`` → ``a``)."""
    keys = set()
    for name in input_names:
        if name == "parameters":
            keys.update(SCHEMAS)
        elif name.startswith("params:"):
            keys.add(name[len("params:") :].split(".")[0])
    return keys


def validate(parameters: Mapping[str, Any], keys: Iterable[str]) -> None:
    """Check ``parameters[key]`` against its model for each of ``keys`` that has one.

    Raises:
        ParametersError: every problem found, one per line.
    """
    problems: list[str] = []
    for key in sorted(set(keys) & set(SCHEMAS)):
        if key not in parameters:
            problems.append(f"{key}: missing (expected in conf/base/parameters_{key}.yml)")
            continue
        try:
            SCHEMAS[key].model_validate(parameters[key])
        except ValidationError as error:
            problems += [_describe(key, SCHEMAS[key], item) for item in error.errors()]
    if problems:
        raise ParametersError(
            "invalid parameters (conf/<env>/parameters_*.yml or --params):\n  - "
            + "\n  - ".join(problems)
        )


def check(model: type[BaseModel], value: Any, path: str) -> BaseModel:
    """One section against its model (for code that takes a section directly).

    Raises:
        ParametersError: naming ``<path>.<key>``, the value and what is allowed.
    """
    try:
        return model.model_validate(value)
    except ValidationError as error:
        problems = [_describe(path, model, item) for item in error.errors()]
        raise ParametersError("; ".join(problems)) from None


def _describe(key: str, model: type[BaseModel], item: Mapping[str, Any]) -> str:
    location = [str(part) for part in item["loc"]]
    path = ".".join([key, *location])
    value = redact(repr(item.get("input")))
    if item["type"] == "extra_forbidden":
        allowed = ", ".join(_fields_at(model, item["loc"][:-1])) or "none"
        return f"{path} = {value}: unknown key; allowed here: {allowed}"
    if item["type"] == "missing":
        return f"{path}: missing"
    if item["type"] == "value_error":  # a model's own check: its message names the key
        return redact(str(item["ctx"]["error"]))
    allowed = item["msg"][0].lower() + item["msg"][1:]
    return f"{path} = {value}: {allowed}"


def _fields_at(model: type[BaseModel], loc: tuple[Any, ...]) -> list[str]:
    """The field names of the model found by following ``loc`` from ``model``."""
    current: Any = model
    for part in loc:
        if isinstance(part, int) or not _is_model(current):
            continue  # a list index (the list's model is already current)
        field = current.model_fields.get(part)
        if field is not None:
            current = _inner_model(field.annotation)
        # else: a dict key (e.g. a preset's name): its values' model is already current
    return list(current.model_fields) if _is_model(current) else []


def _is_model(value: Any) -> bool:
    return isinstance(value, type) and issubclass(value, BaseModel)


def _inner_model(annotation: Any) -> Any:
    """The pydantic model inside ``X``, ``X | None``, ``list[X]``, ``dict[str, X]``."""
    if _is_model(annotation):
        return annotation
    for arg in getattr(annotation, "__args__", ()) or ():
        found = _inner_model(arg)
        if found is not None:
            return found
    return None
