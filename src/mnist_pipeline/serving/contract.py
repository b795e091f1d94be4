"""The REST request contract of the model server: MLflow's and TensorFlow Serving's bodies.

Requests (``POST``), images as MNIST stores them (see :mod:`mnist_pipeline.image_contract`).
The four bodies of MLflow's scoring server and Databricks Model Serving, which
``mlflow models serve`` of the registered model answers the same way:

* ``{"instances": [image, ...]}``: row format, each image 28 × 28 (or 28 × 28 × 1), pixel
  values 0–255; an optional ``"signature_name"`` (only ``serving_default``);
* ``{"inputs": images}``: columnar format, (28, 28), (N, 28, 28) or (N, 28, 28, 1), or
  ``{"inputs": {"<input name>": images}}`` (one input);
* ``{"dataframe_split": {"columns": ["image"], "data": [[pixels], ...]}}`` and
* ``{"dataframe_records": [{"image": pixels}, ...]}``: one column ``image`` whose cells
  hold the 784 pixels of an image flattened row-major (or 28 × 28 nested lists).

Answer: ``{"predictions": [[10 probabilities], ...]}``, one row per image, in order.

Anything else is refused with a :class:`RequestError` (HTTP 4xx) whose message says
what was wrong; the error body ``{"error": "..."}`` carries it.
"""

from __future__ import annotations

import json
from typing import Any

import numpy as np
import orjson

from mnist_pipeline.image_contract import (
    DATAFRAME_COLUMN,
    ImageContractError,
    flat_cells_to_images,
    to_model_batch,
)

SIGNATURE_NAME = "serving_default"
FORMATS = ("instances", "inputs", "dataframe_split", "dataframe_records")
_ONE_OF = 'exactly one of "instances", "inputs", "dataframe_split" or "dataframe_records"'


class RequestError(ValueError):
    """A request the server refuses; ``status`` is the HTTP status to answer.

    ``close_connection``: the body was left unread, so the connection cannot carry another
    request (the answer says ``Connection: close``).
    """

    def __init__(self, message: str, status: int = 400, close_connection: bool = False) -> None:
        super().__init__(message)
        self.status = status
        self.close_connection = close_connection


def parse_json(body: bytes) -> Any:
    """Decode a request body, fast path first.

    ``NaN``/``Infinity`` are not JSON, but many encoders (Python's ``json``) write
    them: they are decoded here so that the image check can say *which* problem
    the pixels have instead of a bare syntax error.
    """
    if not body.strip():
        raise RequestError(f"empty request body: send a JSON object with {_ONE_OF}")
    try:
        return orjson.loads(body)
    except orjson.JSONDecodeError:
        pass
    try:
        return json.loads(body)
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise RequestError(f"request body is not valid JSON: {exc}") from exc


def images_from_request(payload: Any, *, max_batch: int) -> np.ndarray:
    """Validate a decoded request and return its images as float32 (N, 28, 28, 1).

    Raises:
        RequestError: not an object, not exactly one of the four formats, an unknown
            signature, or images that break the image contract.
    """
    if not isinstance(payload, dict):
        raise RequestError(
            f"request must be a JSON object with {_ONE_OF}, found a JSON {type(payload).__name__}"
        )
    signature = payload.get("signature_name", SIGNATURE_NAME)
    if signature != SIGNATURE_NAME:
        raise RequestError(
            f"unknown signature_name {signature!r}: this model has only {SIGNATURE_NAME!r}"
        )
    present = [key for key in FORMATS if key in payload]
    if len(present) != 1:
        found = sorted(payload) or "no keys"
        raise RequestError(f"request must have {_ONE_OF}, found {found}")
    field = present[0]
    try:
        images = _FORMAT_READERS[field](payload[field])
        if isinstance(images, tuple):
            field, images = images
        return to_model_batch(images, max_batch=max_batch)
    except ImageContractError as exc:
        status = 413 if "exceeds the limit" in str(exc) else 400
        raise RequestError(f'"{field}": {exc}', status=status) from exc


def _instances(images: Any) -> Any:
    """Row format: a list of images, never one bare 28 × 28 image."""
    if not isinstance(images, list):
        raise RequestError(
            f'"instances" must be a list of images, found a JSON {type(images).__name__}'
        )
    if not images:
        raise RequestError('"instances" is an empty list: send at least one image')
    images = _as_array(images)
    if isinstance(images, np.ndarray) and images.dtype != object and images.ndim < 3:
        raise ImageContractError(
            "instances must be a list of 28 × 28 (or 28 × 28 × 1) images, found shape "
            f"{tuple(images.shape)}"
        )
    return images


def _inputs(images: Any) -> Any:
    """Columnar format: the images, or ``{"<input name>": images}``."""
    field = "inputs"
    if isinstance(images, dict):
        if len(images) != 1:
            raise RequestError(
                f'"inputs" as an object must name exactly one input, found {sorted(images)}'
            )
        name, images = next(iter(images.items()))
        field = f"inputs.{name}"
    if isinstance(images, list) and not images:
        raise RequestError(f'"{field}" is an empty list: send at least one image')
    return field, images


def _dataframe_split(frame: Any) -> Any:
    """``{"columns": ["image"], "data": [[cell], ...]}`` (pandas' ``orient="split"``)."""
    if not isinstance(frame, dict) or not isinstance(frame.get("data"), list):
        raise RequestError(
            '"dataframe_split" must be an object {"columns": ["image"], "data": [[pixels], ...]}'
        )
    columns = frame.get("columns", [DATAFRAME_COLUMN])
    if not isinstance(columns, list) or len(columns) != 1:
        raise RequestError(
            f'"dataframe_split" must have one column {DATAFRAME_COLUMN!r} (784 pixels per cell, '
            f"flattened row-major), found columns {columns!r}"
        )
    rows = frame["data"]
    if not rows:
        raise RequestError('"dataframe_split.data" is an empty list: send at least one image')
    if not all(isinstance(row, list) and len(row) == 1 for row in rows):
        raise RequestError('"dataframe_split.data" rows must each hold one cell: [pixels]')
    return flat_cells_to_images([row[0] for row in rows])


def _dataframe_records(records: Any) -> Any:
    """``[{"image": pixels}, ...]`` (pandas' ``orient="records"``)."""
    if not isinstance(records, list) or not records:
        raise RequestError(
            '"dataframe_records" must be a non-empty list of {"image": pixels} records'
        )
    if not all(isinstance(record, dict) and len(record) == 1 for record in records):
        raise RequestError(
            f'"dataframe_records" records must each have one key {DATAFRAME_COLUMN!r} '
            "(784 pixels, flattened row-major)"
        )
    return flat_cells_to_images([next(iter(record.values())) for record in records])


_FORMAT_READERS = {
    "instances": _instances,
    "inputs": _inputs,
    "dataframe_split": _dataframe_split,
    "dataframe_records": _dataframe_records,
}


def _as_array(images: list) -> Any:
    """The images as one array, or unchanged when ragged (the contract check says why)."""
    try:
        return np.asarray(images)
    except (ValueError, TypeError):
        return images


def predictions_body(probabilities: np.ndarray) -> bytes:
    """``{"predictions": [[10 probabilities], ...]}`` as JSON bytes (float32 kept exact)."""
    return orjson.dumps(
        {"predictions": np.ascontiguousarray(probabilities, dtype=np.float32)},
        option=orjson.OPT_SERIALIZE_NUMPY,
    )


def error_body(message: str) -> bytes:
    """TensorFlow Serving's error body, ``{"error": "..."}``."""
    return orjson.dumps({"error": message})
