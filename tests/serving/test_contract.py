"""The request contract, without a server: every accepted and refused body."""

from __future__ import annotations

import json

import numpy as np
import orjson
import pytest

from mnist_pipeline.parameters.operations import Serving
from mnist_pipeline.serving.app import images_from_body
from mnist_pipeline.serving.contract import (
    RequestError,
    images_from_request,
    parse_json,
    plain_images,
    predictions_body,
)

IMAGE = np.arange(784).reshape(28, 28) % 256


def _general(body: bytes, max_batch: int = 16) -> np.ndarray:
    """The general path: decode, then check the payload."""
    return images_from_request(parse_json(body), max_batch=max_batch)


def _served(body: bytes, max_batch: int = 16) -> np.ndarray:
    """What the server does: the fast path for plain bodies, else the general path."""
    return images_from_body(body, Serving(max_batch_size=max_batch))


_images = _served


@pytest.fixture(params=[_general, _served], ids=["general", "served"])
def read(request: pytest.FixtureRequest):
    """Both ways a body is read: every answer and every refusal must be the same."""
    return request.param


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
def test_accepted_formats_give_the_same_batch(payload: dict, read) -> None:
    batch = read(orjson.dumps(payload))
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
def test_refused_bodies_say_what_was_wrong(body: bytes, status: int, expected: str, read) -> None:
    with pytest.raises(RequestError, match=None) as caught:
        read(body)
    assert caught.value.status == status
    assert expected in str(caught.value)


@pytest.mark.parametrize("levels", [40, 5_000, 100_000])
def test_deep_bodies_are_refused_with_the_depth_message(levels: int) -> None:
    """Balanced or not, parsed by simdjson or not: the server's depth check answers."""
    balanced = b'{"instances": ' + b"[" * levels + b"7" + b"]" * levels + b"}"
    for body in (balanced, b"[" * levels):
        with pytest.raises(RequestError, match="levels deep, more than the limit of 32"):
            _served(body)


@pytest.mark.parametrize("value", [float("nan"), float("inf"), -float("inf")])
def test_nan_and_infinity_are_refused_as_such(value: float, read) -> None:
    image = IMAGE.astype(float)
    image[3, 4] = value
    body = json.dumps({"instances": [image.tolist()]}).encode()  # Python writes NaN/Infinity
    with pytest.raises(RequestError, match="finite numbers"):
        read(body)


def test_out_of_range_pixels_are_refused(read) -> None:
    with pytest.raises(RequestError, match=r"\[0, 255\]"):
        read(orjson.dumps({"inputs": (IMAGE * 2).tolist()}))


def test_a_batch_over_the_limit_is_413(read) -> None:
    body = orjson.dumps({"instances": [IMAGE.tolist()] * 3})
    with pytest.raises(RequestError, match="exceeds the limit of 2") as caught:
        read(body, max_batch=2)
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


# ── the fast path (plain_images) ─────────────────────────────────────────────────────────
TWO = np.stack([IMAGE, 255 - IMAGE])


def _exponents(images: np.ndarray) -> bytes:
    def text(a: np.ndarray) -> str:
        if a.ndim == 0:
            return f"{float(a):e}"
        return "[" + ", ".join(text(x) for x in a) + "]"

    return ('{"instances": ' + text(images) + "}").encode()


@pytest.mark.parametrize(
    "body",
    [
        orjson.dumps({"instances": TWO.tolist()}),  # integers
        orjson.dumps({"instances": TWO.astype(float).tolist()}),  # 0.0, 1.0, ...
        orjson.dumps({"instances": TWO[..., None].tolist()}),  # channel axis
        orjson.dumps({"inputs": TWO.tolist()}),
        orjson.dumps({"inputs": IMAGE.tolist()}),  # one bare image (columnar only)
        json.dumps({"instances": (TWO / 2).tolist()}, indent=2).encode(),  # halves, newlines
        _exponents(TWO),  # 7.000000e+00
        b" \n" + orjson.dumps({"instances": [[[-0.0] * 28] * 28]}) + b"\n",  # -0.0, spaces
    ],
    ids=["ints", "floats", "channel", "inputs", "inputs-one", "indented", "exponent", "neg-0"],
)
def test_the_fast_path_reads_plain_bodies_exactly_as_the_general_path(body: bytes) -> None:
    fast = plain_images(body, max_batch=16, max_depth=32)
    assert fast is not None
    expected = _general(body)
    assert fast.dtype == expected.dtype == np.float32
    np.testing.assert_array_equal(fast, expected)


def _body_with_rows(*first: str) -> bytes:
    """One image in "instances" whose first rows are ``first`` (JSON text), then rows of 28."""
    rows = [*first, *[json.dumps([7] * 28)] * (28 - len(first))]
    return ('{"instances": [[' + ", ".join(rows) + "]]}").encode()


def _body_with_row(row: str) -> bytes:
    return _body_with_rows(json.dumps([7] * 28), row)


@pytest.mark.parametrize(
    ("body", "max_batch", "max_depth"),
    [
        # ragged rows that still hold 28 × 28 numbers in all
        (_body_with_rows(json.dumps([7] * 29), json.dumps([7] * 27)), 16, 32),
        (_body_with_rows(json.dumps([7] * 28), json.dumps([7] * 29), json.dumps([7] * 27)), 16, 32),
        # channel axis: one pixel [] instead of [7] (the same brackets and commas)
        (
            orjson.dumps({"instances": [IMAGE[..., None].tolist()]}).replace(b"[1]", b"[]", 1),
            16,
            32,
        ),
        (_body_with_row("[7, [7], " + ", ".join(["7"] * 26) + "]"), 16, 32),  # a nested pixel
        (_body_with_row("[7, [], " + ", ".join(["7"] * 27) + "]"), 16, 32),  # an empty one
        (_body_with_row("[true, " + ", ".join(["7"] * 27) + "]"), 16, 32),
        (_body_with_row("[null, " + ", ".join(["7"] * 27) + "]"), 16, 32),
        (_body_with_row('["7", ' + ", ".join(["7"] * 27) + "]"), 16, 32),
        (_body_with_row("[NaN, " + ", ".join(["7"] * 27) + "]"), 16, 32),
        (_body_with_row("[300, " + ", ".join(["7"] * 27) + "]"), 16, 32),  # out of range
        (orjson.dumps({"instances": [(IMAGE / 255).tolist()]}), 16, 32),  # scaled to [0, 1]
        (orjson.dumps({"instances": [IMAGE.tolist()] * 3}), 2, 32),  # over max_batch
        (orjson.dumps({"instances": [IMAGE.tolist()]}), 16, 3),  # deeper than max_depth
        (orjson.dumps({"instances": IMAGE.tolist()}), 16, 32),  # a bare image as rows
        (
            orjson.dumps({"instances": [IMAGE.tolist()], "signature_name": "serving_default"}),
            16,
            32,
        ),  # another key: the general path reads it
        (orjson.dumps({"inputs": {"image": [IMAGE.tolist()]}}), 16, 32),
        (orjson.dumps({"dataframe_records": [{"image": IMAGE.ravel().tolist()}]}), 16, 32),
        (b'{"instances": [[1]], "instances": [[2]]}', 16, 32),  # a key twice
        (b'{"instances": []}', 16, 32),
        (b'{"instances": [[]]}', 16, 32),
        (b"[" * 100_000, 16, 32),
        (b'{"instances": ' + b"[" * 40 + b"7" + b"]" * 40 + b"}", 16, 32),  # balanced, deep
        (b"", 16, 32),
        (b"\xff\xfe", 16, 32),
    ],
    ids=[
        "ragged-first-row",
        "ragged-same-total",
        "channel-empty-pixel",
        "nested-pixel",
        "empty-pixel",
        "true",
        "null",
        "string",
        "nan",
        "out-of-range",
        "unit-scaled",
        "over-max-batch",
        "too-deep",
        "bare-rows",
        "signature-name",
        "named-input",
        "records",
        "key-twice",
        "empty",
        "empty-image",
        "brackets",
        "deep-balanced",
        "empty-body",
        "not-utf8",
    ],
)
def test_the_fast_path_leaves_every_other_body_to_the_general_path(
    body: bytes, max_batch: int, max_depth: int
) -> None:
    """Anything but a plain, valid array of numbers gives None: the general path reads it
    and says what is wrong with it (the refusal tests above run both ways)."""
    assert plain_images(body, max_batch=max_batch, max_depth=max_depth) is None


def test_the_fast_path_serves_one_body_after_another_and_from_threads() -> None:
    """One simdjson parser per thread, holding no document between requests."""
    from concurrent.futures import ThreadPoolExecutor

    bodies = [orjson.dumps({"instances": [((IMAGE + k) % 256).tolist()]}) for k in range(8)]

    def read_all(_: int) -> list[np.ndarray | None]:
        return [plain_images(body, max_batch=16, max_depth=32) for body in bodies * 5]

    with ThreadPoolExecutor(4) as pool:
        for answers in pool.map(read_all, range(4)):
            for k, batch in enumerate(answers[:8]):
                assert batch is not None
                np.testing.assert_array_equal(batch[0, ..., 0], (IMAGE + k) % 256)
