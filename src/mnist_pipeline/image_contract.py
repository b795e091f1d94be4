"""The one input contract of the model, from training to serving: 28 × 28 images as MNIST stores
them (0–255, channel axis optional, one image or a batch), rescaled inside the model; a [0, 1]
image is refused, not rescaled (docs/serving.md). It imports nothing but NumPy and nothing of the
project: the logged model carries this very file (``code/image_contract.py``), so the registered
model checks its input the same way where the project is not installed.
"""

from __future__ import annotations

from typing import Any

import numpy as np

IMAGE_SHAPE = (28, 28)
IMAGE_PIXELS = IMAGE_SHAPE[0] * IMAGE_SHAPE[1]  # 784, a DataFrame cell's flattened image
NUM_CLASSES = 10
MAX_PIXEL = 255.0
ACCEPTED_SHAPES = "(28, 28), (N, 28, 28) or (N, 28, 28, 1)"
DATAFRAME_COLUMN = "image"
INPUT_CONTRACT = (
    "MNIST-convention images: 28x28 grayscale, pixel values 0-255 (0 background, 255 ink), "
    f"shape {ACCEPTED_SHAPES}; DataFrame bodies: one column {DATAFRAME_COLUMN!r} of "
    f"{IMAGE_PIXELS} pixels flattened row-major; output: (N, {NUM_CLASSES}) float32 class "
    "probabilities"
)


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
            infinite values, values outside [0, 255], or an image scaled to [0, 1]
            (:func:`check_not_unit_scaled`).
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
    check_not_unit_scaled(array)
    return array


def check_not_unit_scaled(batch: np.ndarray) -> None:
    """Refuse any image of ``batch`` (N, 28, 28, 1) whose pixels look scaled to [0, 1].

    Scaled means: every pixel within [0, 1] and at least one fractional. Integers 0 and 1
    alone (a 0–255 image that is almost black) are not.

    Raises:
        ImageContractError: naming the first such image and the 0–255 contract.
    """
    flat = batch.reshape(len(batch), -1)
    candidates = np.flatnonzero(flat.max(axis=1) <= 1.0)
    if not candidates.size:
        return
    pixels = flat[candidates]
    scaled = candidates[(pixels != np.floor(pixels)).any(axis=1)]
    if scaled.size:
        raise ImageContractError(
            f"image {int(scaled[0])} looks scaled to [0, 1] (every pixel within [0, 1], some "
            "fractional): this model takes pixel values 0-255 as MNIST stores them (0 "
            "background, 255 ink); multiply by 255 before sending"
        )


def images_from_model_input(model_input: Any) -> Any:
    """What MLflow hands a pyfunc, as images for :func:`to_model_batch`.

    * a DataFrame (anything with ``columns``) of one column: each cell one image,
      784 pixels flattened row-major (or already 28 × 28);
    * a DataFrame of 784 numeric columns: one flattened image per row;
    * a dict of one entry (``{"image": images}``): its value;
    * anything else (arrays, nested lists): unchanged.

    Raises:
        ImageContractError: a DataFrame of another shape, or cells that are not images.
    """
    if hasattr(model_input, "columns") and hasattr(model_input, "to_numpy"):
        columns = list(model_input.columns)
        if len(columns) == IMAGE_PIXELS:
            return model_input.to_numpy().reshape(-1, *IMAGE_SHAPE)
        if len(columns) != 1:
            raise ImageContractError(
                f"a DataFrame input must have one column {DATAFRAME_COLUMN!r} (784 pixels per "
                f"cell, flattened row-major), found {len(columns)} columns"
            )
        return flat_cells_to_images(list(model_input.iloc[:, 0]))
    if isinstance(model_input, dict):
        if len(model_input) != 1:
            raise ImageContractError(
                f"a dict input must hold one entry of images, found keys {sorted(model_input)}"
            )
        return next(iter(model_input.values()))
    return model_input


def flat_cells_to_images(cells: list) -> np.ndarray:
    """One image per cell, each 784 pixels (row-major) or 28 × 28, as an (N, 28, 28) array.

    Raises:
        ImageContractError: a cell that is neither.
    """
    images = []
    for row, cell in enumerate(cells):
        try:
            pixels = np.asarray(cell)
        except (ValueError, TypeError):
            pixels = np.asarray(None)
        if pixels.dtype == object or pixels.size != IMAGE_PIXELS:
            raise ImageContractError(
                f"row {row}: each cell must hold one image of {IMAGE_PIXELS} pixels "
                f"(28x28 flattened row-major), found {pixels.size} values"
            )
        images.append(pixels.reshape(IMAGE_SHAPE))
    if not images:
        raise ImageContractError("the batch is empty: send at least one image")
    return np.stack(images)
