"""The request contract, without a server: every accepted and refused body."""

from __future__ import annotations

import json

import numpy as np
import orjson
import pytest

from mnist_pipeline.serving.contract import (
    RequestError,
    images_from_request,
    parse_json,
    predictions_body,
)

IMAGE = np.arange(784).reshape(28, 28) % 256


def _images(body: bytes, max_batch: int = 16) -> np.ndarray:
    return images_from_request(parse_json(body), max_batch=max_batch)


@pytest.mark.parametrize(
    "payload",
    [
        {"instances": [IMAGE.tolist()]},
        {"instances": [IMAGE[..., None].tolist()], "signature_name": "serving_default"},
        {"inputs": IMAGE.tolist()},
        {"inputs": [IMAGE.tolist()]},
        {"inputs": {"image": [IMAGE[..., None].tolist()]}},
    ],
    ids=["rows", "rows-channel-signature", "columnar-one", "columnar-batch", "named-input"],
)
def test_accepted_formats_give_the_same_batch(payload: dict) -> None:
    batch = _images(orjson.dumps(payload))
    assert batch.shape == (1, 28, 28, 1)
    assert batch.dtype == np.float32
    np.testing.assert_array_equal(batch[0, ..., 0], IMAGE)


def test_rows_keep_their_order() -> None:
    images = np.stack([IMAGE, 255 - IMAGE, IMAGE // 2])
    batch = _images(orjson.dumps({"instances": images.tolist()}))
    np.testing.assert_array_equal(batch[..., 0], images)


@pytest.mark.parametrize(
    ("body", "status", "expected"),
    [
        (b"", 400, "empty request body"),
        (b"{not json", 400, "not valid JSON"),
        (b"[1, 2]", 400, "must be a JSON object"),
        (b'{"images": []}', 400, 'exactly one of "instances"'),
        (b'{"instances": [], "inputs": []}', 400, 'exactly one of "instances"'),
        (b'{"instances": []}', 400, "empty list"),
        (b'{"inputs": []}', 400, "empty list"),
        (b'{"instances": 7}', 400, "must be a list of images"),
        (b'{"instances": [[1, 2, 3]]}', 400, "found shape (1, 3)"),
        (b'{"inputs": [[[1, 2], [3, 4]]]}', 400, "found (1, 2, 2)"),
        (b'{"instances": [[["a"]]]}', 400, "must be numbers"),
        (b'{"inputs": "abc"}', 400, "must be numbers"),
        (b'{"inputs": {"a": 1, "b": 2}}', 400, "exactly one input"),
        (b'{"instances": [[1, [2]]]}', 400, "rectangular"),
        (b'{"instances": [1], "signature_name": "other"}', 400, "unknown signature_name"),
    ],
)
def test_refused_bodies_say_what_was_wrong(body: bytes, status: int, expected: str) -> None:
    with pytest.raises(RequestError, match=None) as caught:
        _images(body)
    assert caught.value.status == status
    assert expected in str(caught.value)


@pytest.mark.parametrize("value", [float("nan"), float("inf"), -float("inf")])
def test_nan_and_infinity_are_refused_as_such(value: float) -> None:
    image = IMAGE.astype(float)
    image[3, 4] = value
    body = json.dumps({"instances": [image.tolist()]}).encode()  # Python writes NaN/Infinity
    with pytest.raises(RequestError, match="finite numbers"):
        _images(body)


def test_out_of_range_pixels_are_refused() -> None:
    with pytest.raises(RequestError, match=r"\[0, 255\]"):
        _images(orjson.dumps({"inputs": (IMAGE * 2).tolist()}))


def test_a_batch_over_the_limit_is_413() -> None:
    body = orjson.dumps({"instances": [IMAGE.tolist()] * 3})
    with pytest.raises(RequestError, match="exceeds the limit of 2") as caught:
        _images(body, max_batch=2)
    assert caught.value.status == 413


def test_predictions_body_keeps_float32_values_exactly() -> None:
    probabilities = np.random.default_rng(0).dirichlet(np.ones(10), size=3).astype(np.float32)
    decoded = np.asarray(json.loads(predictions_body(probabilities))["predictions"], np.float32)
    np.testing.assert_array_equal(decoded, probabilities)
