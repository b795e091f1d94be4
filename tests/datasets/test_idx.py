import gzip
import struct

import numpy as np
import pytest

from mnist_pipeline.datasets.idx import IDXFormatError, parse_idx
from tests.idx_files import encode_idx


@pytest.mark.parametrize("compress", [False, True])
@pytest.mark.parametrize("dtype", [np.uint8, np.int8, np.int16, np.int32, np.float32, np.float64])
def test_round_trip(compress, dtype):
    array = (np.arange(2 * 3 * 4) - 5).astype(dtype).reshape(2, 3, 4)
    if dtype == np.uint8:
        array = np.arange(24, dtype=np.uint8).reshape(2, 3, 4)
    parsed = parse_idx(encode_idx(array, compress=compress), "x")
    assert parsed.dtype == np.dtype(dtype)
    np.testing.assert_array_equal(parsed, array)


def test_gzip_detected_by_content_not_name():
    array = np.arange(10, dtype=np.uint8)
    assert parse_idx(gzip.compress(encode_idx(array)), "labels.idx").tolist() == list(range(10))


def test_header_is_big_endian_mnist_layout():
    raw = encode_idx(np.zeros((3, 28, 28), dtype=np.uint8))
    assert struct.unpack(">IIII", raw[:16]) == (0x803, 3, 28, 28)
    assert len(raw) == 16 + 3 * 28 * 28


def test_wrong_magic_names_file_and_values():
    raw = encode_idx(np.zeros(5, dtype=np.uint8))
    with pytest.raises(
        IDXFormatError, match=r"labels\.gz: wrong magic number 0x00000801, expected 0x00000803"
    ):
        parse_idx(raw, "labels.gz", expected_magic=0x803)


def test_html_page_is_not_an_idx_file():
    with pytest.raises(IDXFormatError, match="not an IDX file"):
        parse_idx(b"<html><body>404</body></html>", "page.gz")


def test_truncated_data_section():
    raw = encode_idx(np.zeros((4, 28, 28), dtype=np.uint8))[:-100]
    with pytest.raises(
        IDXFormatError, match=r"truncated: header declares 4 items \(3,136 bytes\), found 3,036"
    ):
        parse_idx(raw, "img")


def test_trailing_bytes():
    raw = encode_idx(np.zeros(4, dtype=np.uint8)) + b"\x00"
    with pytest.raises(IDXFormatError, match="trailing bytes"):
        parse_idx(raw, "lbl")


def test_truncated_gzip():
    raw = gzip.compress(encode_idx(np.zeros((4, 28, 28), dtype=np.uint8)))
    with pytest.raises(IDXFormatError, match="gzip stream is truncated or corrupt"):
        parse_idx(raw[: len(raw) // 2], "train-images-idx3-ubyte.gz")


def test_wrong_dimensions():
    raw = encode_idx(np.zeros((2, 32, 32), dtype=np.uint8))
    with pytest.raises(IDXFormatError, match=r"dimensions 2 × 32 × 32, expected N × 28 × 28"):
        parse_idx(raw, "img", expected_shape=(None, 28, 28))


def test_truncated_header():
    with pytest.raises(IDXFormatError, match="truncated header"):
        parse_idx(struct.pack(">I", 0x803) + b"\x00\x00", "img")


def test_unknown_dtype_code():
    with pytest.raises(IDXFormatError, match="unknown IDX data type code 0x07"):
        parse_idx(struct.pack(">II", 0x0701, 0), "img")


def test_unsupported_dtype_cannot_be_encoded():
    with pytest.raises(IDXFormatError, match="cannot be stored"):
        encode_idx(np.zeros(3, dtype=np.uint32))
