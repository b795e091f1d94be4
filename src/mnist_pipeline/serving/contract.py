"""The REST request contract of the model server: the four bodies of MLflow's scoring server and
Databricks Model Serving (``instances``, ``inputs``, ``dataframe_split``, ``dataframe_records``),
answered with ``{"predictions": [[10 probabilities], ...]}``; anything else is a
:class:`RequestError` (4xx) saying what was wrong (docs/serving.md).
"""

from __future__ import annotations

import functools
import json
import math
import threading
from typing import Any

import numpy as np
import orjson
import simdjson

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


# Bytes other than the array structure: deleting them leaves a body's brackets and commas.
_NOT_ARRAY_STRUCTURE = bytes(c for c in range(256) if c not in b"[],")
_PARSERS = threading.local()  # a simdjson parser per thread (a parser is not thread-safe)


def plain_images(body: bytes, *, max_batch: int, max_depth: int) -> np.ndarray | None:
    """The fast path: the images of ``{"instances": <numbers>}`` or ``{"inputs": <numbers>}``.

    A body that is exactly one of those keys holding a rectangular array of numbers that
    meets the image contract is decoded by simdjson straight into an array: no Python float
    per pixel, no nested lists (a third of the cost of :func:`parse_json` and
    :func:`images_from_request` at 32 images a request). Any other body (another format, a
    ``signature_name``, strings, ``null``, ragged rows, pixels out of range, NaN, too many
    images, nesting deeper than ``max_depth`` ...) gives None: the general path then reads
    it, and refuses it with its own message. So for any body this either returns what the
    general path would, or leaves the body to it.
    """
    try:
        parser = _PARSERS.parser
    except AttributeError:
        parser = _PARSERS.parser = simdjson.Parser()
    try:
        return _plain_images(parser, body, max_batch, max_depth)
    except RuntimeError:  # a document of this parser still referenced (never expected here)
        _PARSERS.parser = simdjson.Parser()
        return None


def _plain_images(
    parser: simdjson.Parser, body: bytes, max_batch: int, max_depth: int
) -> np.ndarray | None:
    try:
        document = parser.parse(body)
    except ValueError:  # not JSON for simdjson (NaN, Infinity, a syntax error, too deep)
        return None
    if not isinstance(document, simdjson.Object) or len(document) != 1:
        return None
    field = next(iter(document.keys()))
    array = document[field] if field in ("instances", "inputs") else None
    if not isinstance(array, simdjson.Array):
        return None
    shape = []
    element: Any = array
    while isinstance(element, simdjson.Array) and len(element):
        shape.append(len(element))
        element = element[0]
    if 1 + len(shape) > max_depth:  # the general path refuses it with the depth message
        return None
    try:
        pixels = np.frombuffer(array.as_buffer(of_type="d"), dtype=np.float64)
    except (TypeError, ValueError):  # strings, booleans, null, objects
        return None
    del document, array, element  # the parser must hold no document for its next parse
    # Rectangular: the brackets and commas are exactly those of an array of this shape (a
    # nested or a missing value, a row of another length, would change them), and as many
    # numbers as the shape holds (a one-number row and an empty one look alike otherwise).
    # The key ("instances"/"inputs") has none of these bytes.
    if pixels.size != math.prod(shape):
        return None
    if body.translate(None, _NOT_ARRAY_STRUCTURE) != _array_structure(tuple(shape)):
        return None
    if field == "instances" and len(shape) < 3:  # a list of images, never one bare image
        return None
    try:
        return to_model_batch(pixels.reshape(shape), max_batch=max_batch)
    except ImageContractError:
        return None


@functools.lru_cache(maxsize=16)
def _array_structure(shape: tuple[int, ...]) -> bytes:
    """The brackets and commas of a JSON array of numbers of ``shape``: (2, 3) → ``[[,,],[,,]]``."""
    if not shape:
        return b""
    inner = _array_structure(shape[1:])
    return b"[" + b",".join([inner] * shape[0]) + b"]"


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
