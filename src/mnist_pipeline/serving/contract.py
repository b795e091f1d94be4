"""The REST request contract of the model server: TensorFlow Serving's JSON body.

Requests (``POST``), images as MNIST stores them (see :mod:`mnist_pipeline.image_contract`):

* row format: ``{"instances": [image, ...]}``, each image 28 × 28 (or 28 × 28 × 1),
  pixel values 0–255; an optional ``"signature_name"`` (only ``serving_default``);
* columnar format: ``{"inputs": images}`` with images of shape (28, 28), (N, 28, 28)
  or (N, 28, 28, 1), or ``{"inputs": {"<input name>": images}}`` (one input).

Answer: ``{"predictions": [[10 probabilities], ...]}``, one row per image, in order.

Anything else is refused with a :class:`RequestError` (HTTP 4xx) whose message says
what was wrong; TensorFlow Serving's error body ``{"error": "..."}`` carries it.
"""

from __future__ import annotations

import json
from typing import Any

import numpy as np
import orjson

from mnist_pipeline.image_contract import ImageContractError, to_model_batch

SIGNATURE_NAME = "serving_default"


class RequestError(ValueError):
    """A request the server refuses; ``status`` is the HTTP status to answer."""

    def __init__(self, message: str, status: int = 400) -> None:
        super().__init__(message)
        self.status = status


def parse_json(body: bytes) -> Any:
    """Decode a request body, fast path first.

    ``NaN``/``Infinity`` are not JSON, but many encoders (Python's ``json``) write
    them: they are decoded here so that the image check can say *which* problem
    the pixels have instead of a bare syntax error.
    """
    if not body.strip():
        raise RequestError('empty request body: send {"instances": [...]} or {"inputs": ...}')
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
        RequestError: not an object, neither/both of ``instances`` and ``inputs``,
            an unknown signature, or images that break the image contract.
    """
    if not isinstance(payload, dict):
        raise RequestError(
            f'request must be a JSON object {{"instances": [...]}} or {{"inputs": ...}}, '
            f"found a JSON {type(payload).__name__}"
        )
    signature = payload.get("signature_name", SIGNATURE_NAME)
    if signature != SIGNATURE_NAME:
        raise RequestError(
            f"unknown signature_name {signature!r}: this model has only {SIGNATURE_NAME!r}"
        )
    has_instances, has_inputs = "instances" in payload, "inputs" in payload
    if has_instances == has_inputs:
        found = sorted(payload) or "no keys"
        raise RequestError(
            'request must have exactly one of "instances" (row format) or "inputs" '
            f"(columnar format), found {found}"
        )
    if has_instances:
        images = payload["instances"]
        field = "instances"
        if not isinstance(images, list):
            raise RequestError(
                f'"instances" must be a list of images, found a JSON {type(images).__name__}'
            )
    else:
        images = payload["inputs"]
        field = "inputs"
        if isinstance(images, dict):
            if len(images) != 1:
                raise RequestError(
                    f'"inputs" as an object must name exactly one input, found {sorted(images)}'
                )
            field, images = next(iter(images.items()))
            field = f"inputs.{field}"
    if isinstance(images, list) and not images:
        raise RequestError(f'"{field}" is an empty list: send at least one image')
    try:
        if has_instances:
            # Row format: a list of images, never one bare 28 × 28 image.
            images = _as_array(images)
            if isinstance(images, np.ndarray) and images.dtype != object and images.ndim < 3:
                raise ImageContractError(
                    "instances must be a list of 28 × 28 (or 28 × 28 × 1) images, found shape "
                    f"{tuple(images.shape)}"
                )
        return to_model_batch(images, max_batch=max_batch)
    except ImageContractError as exc:
        status = 413 if "exceeds the limit" in str(exc) else 400
        raise RequestError(f'"{field}": {exc}', status=status) from exc


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
