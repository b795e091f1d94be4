"""More than one request's worth of images: every answer goes to the file it belongs to.

The stub server answers differently per image (a digit computed from the image's own pixels),
so a client that shifts, reorders or repeats answers across requests maps a digit to the
wrong file name and this test fails; a stub answering the same digit for every image could not
tell.
"""

from __future__ import annotations

import hashlib
import json
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import numpy as np
from PIL import Image

from mnist_pipeline.client import MAX_IMAGES_PER_REQUEST, load_mnist_image, predict_digits


def _digit_of(image: np.ndarray) -> int:
    """The stub's 'model': a digit that depends on every pixel of the image (a hash)."""
    pixels = np.rint(np.asarray(image, np.float64)).astype(np.int64)
    return int(hashlib.sha256(pixels.tobytes()).hexdigest(), 16) % 10


@contextmanager
def per_image_stub() -> Iterator[tuple[str, list[int]]]:
    sizes: list[int] = []

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
            sizes.append(len(body["instances"]))
            rows = []
            for instance in body["instances"]:
                row = [0.0] * 10
                row[_digit_of(instance)] = 1.0
                rows.append(row)
            data = json.dumps({"predictions": rows}).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def log_message(self, *args) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_port}", sizes
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


def test_answers_map_to_their_files_across_several_requests(tmp_path: Path):
    count = 2 * MAX_IMAGES_PER_REQUEST + 5  # three requests, the last one short
    paths = []
    for i in range(count):
        pixels = np.zeros((28, 28), np.uint8)
        pixels[6 : 10 + i % 11, 8 : 11 + i % 7] = 255  # a stroke of a different size per file
        paths.append(tmp_path / f"digit-{i:03d}.png")
        Image.fromarray(pixels).save(paths[-1])
    expected = {str(path): _digit_of(load_mnist_image(path)) for path in paths}
    assert len(set(expected.values())) >= 5  # the answers really differ between files

    with per_image_stub() as (url, sizes):
        results = predict_digits(paths, url, token_env=None)

    assert sizes == [MAX_IMAGES_PER_REQUEST, MAX_IMAGES_PER_REQUEST, 5]
    assert [result.source for result in results] == [str(path) for path in paths]
    assert {result.source: result.digit for result in results} == expected
