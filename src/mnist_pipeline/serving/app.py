"""The HTTP application: TensorFlow Serving's REST API plus the ``mlflow models serve`` and
Databricks paths, a status route (no filesystem path shown) and liveness routes (the route table:
docs/serving.md). Bodies follow :mod:`.contract`; every refusal is a 4xx with ``{"error": ...}``
and the server keeps serving; with a token (:mod:`.guards`) predict and status routes need
``Authorization: Bearer <token>``, liveness stays open.
"""

from __future__ import annotations

import logging
import time
from typing import Any

import numpy as np
import orjson
from starlette.applications import Starlette
from starlette.requests import ClientDisconnect, Request
from starlette.responses import Response
from starlette.routing import Route

from mnist_pipeline.parameters.operations import Serving

from .contract import (
    RequestError,
    error_body,
    images_from_request,
    parse_json,
    plain_images,
    predictions_body,
)
from .guards import json_depth, token_matches
from .inference_log import InferenceLog
from .predictor import BatchingPredictor

logger = logging.getLogger(__name__)

JSON = "application/json"


def _json(payload: Any, status: int = 200) -> Response:
    return Response(orjson.dumps(payload), status_code=status, media_type=JSON)


def _error(message: str, status: int) -> Response:
    return Response(error_body(message), status_code=status, media_type=JSON)


# A body over the limit is still read, and discarded, up to this many bytes: clients that send
# the whole body before reading the answer (Python's urllib and requests) then see the 413;
# a connection closed on an unread body reaches them as a reset instead. Beyond it (and for
# ``Expect: 100-continue``, whose client has not sent the body) the 413 goes out at once and
# the connection is closed. ``body_timeout_s`` bounds the time spent reading.
DISCARD_BYTES = 64 * 1024 * 1024


async def _read_body(request: Request, limit: int) -> bytes:
    declared = request.headers.get("content-length")
    if declared is not None:
        try:
            size = int(declared)
        except ValueError:
            raise RequestError(f"invalid Content-Length header {declared!r}") from None
        if size > limit:
            complete = False
            if size <= DISCARD_BYTES and "100-continue" not in request.headers.get("expect", ""):
                async for _ in request.stream():
                    pass
                complete = True
            raise RequestError(
                f"request body of {size:,} bytes exceeds the limit of {limit:,} bytes: "
                "send fewer images per request",
                status=413,
                close_connection=not complete,
            )
    chunks, total = [], 0
    async for chunk in request.stream():
        total += len(chunk)
        if total > limit:
            chunks = []  # keep reading (and discarding) to the end or to DISCARD_BYTES
            if total > DISCARD_BYTES:
                break
            continue
        chunks.append(chunk)
    if total > limit:
        raise RequestError(
            f"request body exceeds the limit of {limit:,} bytes: send fewer images per request",
            status=413,
            close_connection=total > DISCARD_BYTES,
        )
    return b"".join(chunks)


def images_from_body(body: bytes, limits: Serving) -> np.ndarray:
    """The images of a request body, or :class:`RequestError` saying what is wrong with it.

    The plain row and columnar bodies of numbers take the fast path
    (:func:`~.contract.plain_images`); everything else, and every refusal, goes through
    the depth check, the JSON decoder and :func:`~.contract.images_from_request`.
    """
    images = plain_images(body, max_batch=limits.max_batch_size, max_depth=limits.max_json_depth)
    if images is not None:
        return images
    _check_depth(body, limits.max_json_depth)
    return images_from_request(parse_json(body), max_batch=limits.max_batch_size)


def _check_depth(body: bytes, limit: int) -> None:
    if body.count(b"[") + body.count(b"{") <= limit:  # cannot nest deeper than it opens
        return
    depth = json_depth(body)
    if depth > limit:
        raise RequestError(
            f"request body nests JSON {depth:,} levels deep, more than the limit of {limit}: "
            'send {"instances": [image, ...]} or {"inputs": images}'
        )


# What the status route may show about the model: names and versions, never a path or URI
# of a store (``source``, ``registry_uri`` may hold absolute paths or hosts).
PUBLIC_MODEL_FIELDS = ("name", "alias", "version", "run_id")


def public_model_info(model_info: dict[str, Any]) -> dict[str, Any]:
    """The model description clients may see: name, alias, version, run id, ``models:/`` URI."""
    info = {key: model_info[key] for key in PUBLIC_MODEL_FIELDS if model_info.get(key)}
    if str(model_info.get("model_uri", "")).startswith("models:/"):
        info["model_uri"] = model_info["model_uri"]
    return info


def _not_served(endpoint: str, name: str) -> Response:
    return _error(f"model {endpoint!r} is not served here; this server serves {name!r}", 404)


def create_app(
    predictor: BatchingPredictor,
    model_info: dict[str, Any],
    limits: Serving | None = None,
    token: str | None = None,
    inference_log: InferenceLog | None = None,
) -> Starlette:
    """The ASGI app serving ``predictor`` under the name ``model_info["name"]``.

    Args:
        predictor: the running model.
        model_info: at least ``name``; ``version``, ``model_uri`` and the like are
            shown by the status route (see :func:`public_model_info`).
        limits: the ``serving`` settings (``max_request_bytes``, ``max_batch_size``,
            ``max_json_depth``).
        token: when set, predict and status routes need ``Authorization: Bearer <token>``.
        inference_log: records every answered prediction (never blocks; see its module).
    """
    limits = limits or Serving()
    name = str(model_info.get("name", "model"))
    public_info = public_model_info(model_info)

    def unauthorized(request: Request) -> Response | None:
        if token is None or token_matches(request.headers.get("authorization"), token):
            return None
        given = "a wrong" if request.headers.get("authorization") else "no"
        response = _error(
            f"{given} bearer token: this server needs 'Authorization: Bearer <token>'", 401
        )
        response.headers["WWW-Authenticate"] = "Bearer"
        return response

    async def predict(request: Request) -> Response:
        started = time.perf_counter()
        if refused := unauthorized(request):
            return refused
        endpoint = request.path_params.get("model")
        if endpoint is not None and endpoint != name:
            return _error(
                f"model {endpoint!r} is not served here; this server serves {name!r}", 404
            )
        try:
            body = await _read_body(request, limits.max_request_bytes)
            images = images_from_body(body, limits)
        except RequestError as exc:
            refused = _error(str(exc), exc.status)
            if exc.close_connection:  # the rest of the body stays unread
                refused.headers["Connection"] = "close"
            return refused
        except ClientDisconnect:
            return _error("client disconnected", 400)
        try:
            probabilities = await predictor.predict(images)
        except Exception as exc:  # the model itself failed: not the client's fault
            logger.exception("prediction failed")
            return _error(f"prediction failed: {type(exc).__name__}: {exc}", 500)
        response = Response(predictions_body(probabilities), media_type=JSON)
        if inference_log is not None:
            inference_log.log_request(request.headers, images, probabilities, started, response)
        return response

    async def status(request: Request) -> Response:
        endpoint = request.path_params["model"]
        if endpoint.endswith(":predict"):
            return await method_not_allowed(request, None)
        if refused := unauthorized(request):
            return refused
        if endpoint != name:
            return _error(
                f"model {endpoint!r} is not served here; this server serves {name!r}", 404
            )
        return _json(
            {
                "model_version_status": [
                    {
                        "version": str(model_info.get("version", "")),
                        "state": "AVAILABLE",
                        "status": {"error_code": "OK", "error_message": ""},
                    }
                ],
                "model": public_info,
                "batches": predictor.batches,
                "images": predictor.images,
                **({"inference_log": inference_log.status()} if inference_log else {}),
            }
        )

    async def health(request: Request) -> Response:
        return _json({"status": "ok", "model": name})

    async def not_found(request: Request, exc: Exception) -> Response:
        return _error(
            f"no route {request.method} {request.url.path}; predict with POST "
            f"/v1/models/{name}:predict or POST /invocations",
            404,
        )

    async def method_not_allowed(request: Request, exc: Exception | None) -> Response:
        return _error(f"method {request.method} is not allowed on {request.url.path}", 405)

    routes = [
        Route("/v1/models/{model}:predict", predict, methods=["POST"]),
        Route("/invocations", predict, methods=["POST"]),
        Route("/serving-endpoints/{model}/invocations", predict, methods=["POST"]),
        Route("/v1/models/{model}", status, methods=["GET"]),
        Route("/health", health, methods=["GET"]),
        Route("/ping", health, methods=["GET"]),
    ]
    return Starlette(routes=routes, exception_handlers={404: not_found, 405: method_not_allowed})
