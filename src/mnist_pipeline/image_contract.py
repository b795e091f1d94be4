"""The one input contract of the model, from training to serving.

The model that leaves training takes images **as MNIST stores them**: 28 × 28
grayscale, pixel values 0–255 (0 = background, 255 = ink), with or without a
trailing channel axis, one image or a batch. Rescaling to [0, 1] happens
*inside* the model, so no caller ever rescales (the train/serve skew of the
original notebooks).

:func:`to_model_batch` turns anything that honours the contract into the
model's tensor layout and refuses anything else with a message that says what
was expected and what was found. Evaluation, the model server and the client
all go through it.
"""

from __future__ import annotations

from typing import Any

import numpy as np

IMAGE_SHAPE = (28, 28)
MAX_PIXEL = 255.0
ACCEPTED_SHAPES = "(28, 28), (N, 28, 28) or (N, 28, 28, 1)"


class ImageContractError(ValueError):
    """Input that does not honour the model's image contract."""


def to_model_batch(images: Any, *, max_batch: int | None = None) -> np.ndarray:
    """Validate MNIST-convention images and return them as float32 (N, 28, 28, 1).

    Args:
        images: a nested list or array of shape (28, 28), (N, 28, 28) or
            (N, 28, 28, 1), numbers in [0, 255].
        max_batch: refuse batches larger than this (``None``: no limit).

    Raises:
        ImageContractError: not numeric, wrong shape, empty, too large, NaN or
            infinite values, or values outside [0, 255].
    """
    try:
        array = np.asarray(images)
    except (ValueError, TypeError) as exc:  # ragged nested lists
        raise ImageContractError(
            f"images must be a rectangular array of shape {ACCEPTED_SHAPES}: {exc}"
        ) from exc
    if array.dtype == object:
        raise ImageContractError(
            f"images must be a rectangular array of shape {ACCEPTED_SHAPES}; "
            "found rows of different lengths or mixed types"
        )
    if array.dtype.kind not in "biuf":
        raise ImageContractError(
            f"pixel values must be numbers in [0, 255], found {array.dtype.name} values"
        )
    if array.shape == IMAGE_SHAPE:
        array = array[np.newaxis]
    if array.ndim == 3 and array.shape[1:] == IMAGE_SHAPE:
        array = array[..., np.newaxis]
    if array.ndim != 4 or array.shape[1:] != (*IMAGE_SHAPE, 1):
        raise ImageContractError(
            f"images must have shape {ACCEPTED_SHAPES}, found {tuple(array.shape)}"
        )
    if len(array) == 0:
        raise ImageContractError("the batch is empty: send at least one image")
    if max_batch is not None and len(array) > max_batch:
        raise ImageContractError(f"batch of {len(array)} images exceeds the limit of {max_batch}")
    array = array.astype(np.float32, copy=False)
    if not np.isfinite(array).all():
        raise ImageContractError("pixel values must be finite numbers, found NaN or infinity")
    low, high = float(array.min()), float(array.max())
    if low < 0 or high > MAX_PIXEL:
        raise ImageContractError(
            f"pixel values must be in [0, 255] (0 background, 255 ink), found [{low:g}, {high:g}]"
        )
    return array
