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
        {"dataframe_split": {"columns": ["image"], "data": [[IMAGE.ravel().tolist()]]}},
        {"dataframe_split": {"columns": ["image"], "index": [0], "data": [[IMAGE.tolist()]]}},
        {"dataframe_records": [{"image": IMAGE.ravel().tolist()}]},
    ],
    ids=[
        "rows",
        "rows-channel-signature",
        "columnar-one",
        "columnar-batch",
        "named-input",
        "dataframe-split-flat",
        "dataframe-split-nested",
        "dataframe-records",
    ],
)
def test_accepted_formats_give_the_same_batch(payload: dict) -> None:
    batch = _images(orjson.dumps(payload))
    assert batch.shape == (1, 28, 28, 1)
    assert batch.dtype == np.float32
    np.testing.assert_array_equal(batch[0, ..., 0], IMAGE)


def test_the_four_formats_map_to_the_same_batch() -> None:
    """MLflow's and Databricks' four bodies of the same three images: one batch, in order."""
    images = np.stack([IMAGE, 255 - IMAGE, IMAGE // 2])
    flat = images.reshape(3, -1).tolist()
    bodies = {
        "instances": {"instances": images.tolist()},
        "inputs": {"inputs": images.tolist()},
        "dataframe_split": {"dataframe_split": {"columns": ["image"], "data": [[f] for f in flat]}},
        "dataframe_records": {"dataframe_records": [{"image": f} for f in flat]},
    }
    for name, payload in bodies.items():
        batch = _images(orjson.dumps(payload))
        assert batch.shape == (3, 28, 28, 1), name
        np.testing.assert_array_equal(batch[..., 0], images, err_msg=name)


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
        (b'{"dataframe_split": [1]}', 400, '{"columns": ["image"]'),
        (b'{"dataframe_split": {"columns": ["a", "b"], "data": [[1, 2]]}}', 400, "one column"),
        (b'{"dataframe_split": {"columns": ["image"], "data": []}}', 400, "empty list"),
        (b'{"dataframe_split": {"data": [[[1, 2, 3]]]}}', 400, "found 3 values"),
        (b'{"dataframe_records": []}', 400, "non-empty list"),
        (b'{"dataframe_records": [{"image": [1], "x": 2}]}', 400, "one key"),
        (b'{"dataframe_records": [{"image": "abc"}]}', 400, "784 pixels"),
        (b'{"inputs": [], "dataframe_records": []}', 400, "exactly one of"),
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


@pytest.mark.parametrize("request_format", ["instances", "dataframe_split"])
def test_the_clients_bodies_are_read_as_the_same_batch(request_format: str) -> None:
    from mnist_pipeline.client.http import request_body

    images = np.stack([IMAGE, 255 - IMAGE]).astype(np.uint8)
    batch = _images(request_body(images, request_format))
    np.testing.assert_array_equal(batch[..., 0], images)


def test_the_client_refuses_an_unknown_format() -> None:
    from mnist_pipeline.client.http import request_body

    with pytest.raises(ValueError, match="unknown request format 'csv'"):
        request_body(np.zeros((1, 28, 28)), "csv")
