"""Merged batches: every request gets its own rows, in order (fast, no TensorFlow).

The real :class:`BatchingPredictor` with a model that answers, for each image, a row that
names the image (its marker pixel). The first call is held until the other requests have
queued, so the predictor must merge them (and carry over the one that does not fit).
"""

from __future__ import annotations

import asyncio
import threading

import numpy as np

from mnist_pipeline.serving.predictor import BatchingPredictor


class MarkerModel:
    """Row i = the marker of image i (its top-left pixel), repeated over 10 columns."""

    def __init__(self) -> None:
        self.release = threading.Event()
        self.started = threading.Event()
        self.calls: list[int] = []

    def __call__(self, images: np.ndarray) -> np.ndarray:
        self.calls.append(len(images))
        self.started.set()
        assert self.release.wait(30), "the test never released the first batch"
        return np.repeat(images[:, 0, 0, None].astype(np.float32), 10, axis=1)


def _images(markers: list[int]) -> np.ndarray:
    images = np.zeros((len(markers), 28, 28), np.float32)
    images[:, 0, 0] = markers
    return images


def test_merged_requests_get_their_own_rows_in_order():
    model = MarkerModel()
    predictor = BatchingPredictor(model, max_batch_images=8)
    requests = [[1], [10, 11, 12], [20], [30, 31, 32, 33], [40, 41, 42, 43, 44]]

    async def scenario() -> list[np.ndarray]:
        first = asyncio.ensure_future(predictor.predict(_images(requests[0])))
        await asyncio.get_running_loop().run_in_executor(None, model.started.wait, 30)
        # Queued while the first batch computes: 3 + 1 + 4 images fill the next batch of 8;
        # the last request (5 images) does not fit and starts the batch after.
        rest = [asyncio.ensure_future(predictor.predict(_images(r))) for r in requests[1:]]
        await asyncio.sleep(0)  # let every request reach the queue
        while predictor._queue.qsize() < len(rest):
            await asyncio.sleep(0.001)
        model.release.set()
        return await asyncio.gather(first, *rest)

    try:
        answers = asyncio.run(scenario())
    finally:
        predictor.close()
    for markers, answer in zip(requests, answers, strict=True):
        assert answer.shape == (len(markers), 10)
        np.testing.assert_array_equal(answer[:, 0], markers)
    assert model.calls == [1, 8, 5]  # merged, and the one that did not fit carried over
