"""Cheap per-image summaries, the same for the inference log, batch scores and drift checks.

All take MNIST-convention images (28 × 28, 0–255 ink on 0 background, any dtype, with
or without a channel axis) and cost a few vector operations per batch:

* ``mean_intensity``: mean pixel value / 255 (0 = empty, 1 = all ink);
* ``ink_fraction``: share of pixels brighter than half scale (the strokes);
* ``bbox_height`` / ``bbox_width``: rows / columns that hold any pixel above
  ``BBOX_LEVEL`` (the digit's bounding box; 0 for an empty image).
"""

from __future__ import annotations

import numpy as np

from mnist_pipeline.image_contract import MAX_PIXEL

INK_LEVEL = 0.5 * MAX_PIXEL
BBOX_LEVEL = 0.1 * MAX_PIXEL
SUMMARY_FEATURES = ("mean_intensity", "ink_fraction", "bbox_height", "bbox_width")


def image_summaries(images: np.ndarray) -> dict[str, np.ndarray]:
    """``{feature: float32 (N,)}`` for a batch of images (see the module docstring)."""
    batch = np.asarray(images, dtype=np.float32)
    if batch.ndim == 4:
        batch = batch[..., 0]
    if batch.ndim == 2:
        batch = batch[np.newaxis]
    flat = batch.reshape(len(batch), -1)
    marked = batch > BBOX_LEVEL
    return {
        "mean_intensity": (flat.mean(axis=1) / MAX_PIXEL).astype(np.float32),
        "ink_fraction": (flat > INK_LEVEL).mean(axis=1).astype(np.float32),
        "bbox_height": _extent(marked.any(axis=2)),
        "bbox_width": _extent(marked.any(axis=1)),
    }


def _extent(mask: np.ndarray) -> np.ndarray:
    """Per row of ``mask`` (N, L): last marked index − first marked index + 1 (0 if none)."""
    length = mask.shape[1]
    any_marked = mask.any(axis=1)
    first = mask.argmax(axis=1)
    last = length - 1 - mask[:, ::-1].argmax(axis=1)
    return np.where(any_marked, last - first + 1, 0).astype(np.float32)
