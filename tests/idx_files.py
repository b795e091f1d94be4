"""Writing IDX files, which only tests do: the product reads MNIST and never writes it."""

from __future__ import annotations

import gzip
import struct

import numpy as np

from mnist_pipeline.datasets.idx import IDX_DTYPES, IDXFormatError

# numpy dtype (little-endian, as arrays usually are) → IDX dtype code.
_CODES = {
    dtype.newbyteorder("<") if dtype.itemsize > 1 else dtype: code
    for code, dtype in IDX_DTYPES.items()
}


def encode_idx(array: np.ndarray, *, compress: bool = False) -> bytes:
    """Encode an array as IDX bytes (gzipped when ``compress``).

    Raises:
        IDXFormatError: the array's dtype has no IDX code.
    """
    dtype = array.dtype.newbyteorder("<") if array.dtype.itemsize > 1 else array.dtype
    if dtype not in _CODES:
        raise IDXFormatError(f"dtype {array.dtype} cannot be stored in an IDX file")
    code = _CODES[dtype]
    header = struct.pack(">I", (code << 8) | array.ndim)
    header += struct.pack(f">{array.ndim}I", *array.shape)
    payload = np.ascontiguousarray(array, dtype=IDX_DTYPES[code]).tobytes()
    body = header + payload
    # mtime=0 makes the bytes reproducible, so checksums of written files are stable.
    return gzip.compress(body, mtime=0) if compress else body


def write_split(folder, prefix: str, split: dict[str, np.ndarray]) -> dict[str, str]:
    """MNIST-named gzipped IDX files of ``split`` in ``folder``; return file name → SHA-256."""
    import hashlib

    sums = {}
    for kind, dims in (("images", 3), ("labels", 1)):
        name = f"{prefix}-{kind}-idx{dims}-ubyte.gz"
        data = encode_idx(split[kind], compress=True)
        (folder / name).write_bytes(data)
        sums[name] = hashlib.sha256(data).hexdigest()
    return sums
