"""The IDX file format (the format MNIST ships in): bytes ↔ numpy arrays.

Layout (all header integers are 32-bit big-endian)::

    offset 0   magic: 0x00 0x00 <dtype code> <number of dimensions>
    offset 4   one uint32 size per dimension
    then       the data, row-major, in the dtype given by the code

MNIST images are ``0x00000803`` (uint8, 3 dimensions: N × 28 × 28) and labels
``0x00000801`` (uint8, 1 dimension: N). Files may be gzipped; gzip is detected
from its magic bytes, not from the file name.

Every error raised here is an :class:`IDXFormatError` whose message names the
file and says what was expected and what was found.
"""

from __future__ import annotations

import gzip
import struct
import zlib

import numpy as np

GZIP_MAGIC = b"\x1f\x8b"

# IDX dtype code → numpy dtype (IDX stores multi-byte values big-endian).
IDX_DTYPES: dict[int, np.dtype] = {
    0x08: np.dtype(np.uint8),
    0x09: np.dtype(np.int8),
    0x0B: np.dtype(">i2"),
    0x0C: np.dtype(">i4"),
    0x0D: np.dtype(">f4"),
    0x0E: np.dtype(">f8"),
}


class IDXFormatError(ValueError):
    """An IDX file is corrupt, truncated or not what was expected."""


def decompress_if_gzipped(raw: bytes, name: str) -> bytes:
    """Return ``raw`` gunzipped when it starts with the gzip magic, else unchanged.

    Raises:
        IDXFormatError: the gzip stream is truncated or corrupt.
    """
    if not raw.startswith(GZIP_MAGIC):
        return raw
    try:
        return gzip.decompress(raw)
    except (EOFError, OSError, zlib.error) as exc:
        raise IDXFormatError(
            f"{name}: the gzip stream is truncated or corrupt ({exc}); "
            "delete the file and fetch it again"
        ) from exc


def parse_idx(
    raw: bytes,
    name: str,
    *,
    expected_magic: int | None = None,
    expected_shape: tuple[int | None, ...] | None = None,
) -> np.ndarray:
    """Parse IDX bytes (gzipped or not) into an array.

    Args:
        raw: the file's bytes.
        name: the file's name or URL, used in error messages.
        expected_magic: the magic number the file must have, e.g. ``0x803``.
        expected_shape: the shape the array must have; ``None`` entries match
            any size (e.g. ``(None, 28, 28)`` for MNIST images).

    Raises:
        IDXFormatError: wrong magic number, unknown dtype, wrong dimensions,
            or a data section shorter or longer than the header declares.
    """
    data = decompress_if_gzipped(raw, name)
    if len(data) < 4:
        raise IDXFormatError(f"{name}: {len(data)} bytes is too short for an IDX header")
    magic = struct.unpack(">I", data[:4])[0]
    if expected_magic is not None and magic != expected_magic:
        raise IDXFormatError(
            f"{name}: wrong magic number 0x{magic:08X}, expected 0x{expected_magic:08X} "
            "(is this the right file, or an HTML error page?)"
        )
    if magic >> 16 != 0:
        raise IDXFormatError(f"{name}: not an IDX file (magic number 0x{magic:08X})")
    code, ndim = (magic >> 8) & 0xFF, magic & 0xFF
    if code not in IDX_DTYPES:
        raise IDXFormatError(f"{name}: unknown IDX data type code 0x{code:02X}")
    header_size = 4 + 4 * ndim
    if len(data) < header_size:
        raise IDXFormatError(f"{name}: truncated header ({len(data)} of {header_size} bytes)")
    shape = struct.unpack(f">{ndim}I", data[4:header_size])
    if expected_shape is not None and (
        len(shape) != len(expected_shape)
        or any(e is not None and e != s for e, s in zip(expected_shape, shape, strict=True))
    ):
        wanted = " × ".join("N" if e is None else str(e) for e in expected_shape)
        raise IDXFormatError(f"{name}: dimensions {' × '.join(map(str, shape))}, expected {wanted}")
    dtype = IDX_DTYPES[code]
    expected_bytes = int(np.prod(shape, dtype=np.int64)) * dtype.itemsize
    found_bytes = len(data) - header_size
    if found_bytes != expected_bytes:
        problem = "truncated" if found_bytes < expected_bytes else "has trailing bytes"
        raise IDXFormatError(
            f"{name}: data section {problem}: header declares {shape[0]:,} items "
            f"({expected_bytes:,} bytes), found {found_bytes:,} bytes"
        )
    array = np.frombuffer(data, dtype=dtype, offset=header_size).reshape(shape)
    # Native byte order and a writable copy, so callers never share the buffer.
    return array.astype(dtype.newbyteorder("="), copy=True)
