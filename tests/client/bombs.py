"""Huge 1-bit PNGs written row by row: a few kB on disk, any number of pixels when decoded."""

from __future__ import annotations

import struct
import zlib
from pathlib import Path


def _chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def bilevel_png(
    path: Path, width: int, height: int, bar: tuple[int, int, int, int] | None = None
) -> Path:
    """A white 1-bit grayscale PNG of ``width`` × ``height``, black inside ``bar``.

    ``bar`` is ``(top, bottom, left, right)`` in pixels (a stroke, e.g. a "1"); rows
    are compressed as they are made, so the image never exists in memory.
    """
    row_bytes = (width + 7) // 8
    white = b"\x00" + b"\xff" * row_bytes  # filter byte 0, then 8 pixels per byte
    inked = white
    if bar is not None:
        left, right = bar[2], bar[3]
        bits = bytearray(b"\xff" * row_bytes)
        for x in range(left, right):
            bits[x // 8] &= ~(0x80 >> (x % 8)) & 0xFF
        inked = b"\x00" + bytes(bits)
    top, bottom = (bar[0], bar[1]) if bar is not None else (height, height)
    compressor = zlib.compressobj(1)
    data = []
    for row, count in ((white, top), (inked, bottom - top), (white, height - bottom)):
        for start in range(0, count, 1024):  # 1,024 rows per call
            data.append(compressor.compress(row * min(1024, count - start)))
    data.append(compressor.flush())
    header = struct.pack(">IIBBBBB", width, height, 1, 0, 0, 0, 0)  # 1 bit, grayscale
    path.write_bytes(
        b"\x89PNG\r\n\x1a\n"
        + _chunk(b"IHDR", header)
        + _chunk(b"IDAT", b"".join(data))
        + _chunk(b"IEND", b"")
    )
    return path
