"""Preprocessing nodes: pixels to [0, 1], a stratified validation split, a fingerprint."""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from typing import Any

import numpy as np
from sklearn.model_selection import train_test_split

from mnist_pipeline.datasets import ImageShards
from mnist_pipeline.image_contract import MAX_PIXEL


def scale_images(split: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Pixels 0–255 (uint8, N × H × W) → float32 in [0, 1] with a channel axis (N × H × W × 1).

    Raises:
        ValueError: the images are not a uint8 stack of 2-D images.
    """
    images = split["images"]
    if images.ndim != 3 or images.dtype != np.uint8:
        raise ValueError(
            "expected uint8 images of shape (N, height, width), "
            f"found {images.dtype} {images.shape}"
        )
    scaled = (images.astype(np.float32) / np.float32(MAX_PIXEL))[..., np.newaxis]
    return {"images": scaled, "labels": split["labels"].astype(np.uint8)}


def split_train_validation(
    split: dict[str, np.ndarray], params: dict[str, Any]
) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray]]:
    """Hold out a stratified, seeded validation set.

    Args:
        split: the scaled training split.
        params: ``validation_size`` (a fraction in (0, 1) or a whole count) and ``seed``.

    Returns:
        ``(train, validation)``; every digit keeps its share in both.

    Raises:
        ValueError: ``validation_size`` is neither a fraction nor a usable count.
    """
    size, total = params["validation_size"], len(split["labels"])
    is_fraction = isinstance(size, float) and 0 < size < 1
    is_count = isinstance(size, int) and not isinstance(size, bool) and 10 <= size <= total - 10
    if not (is_fraction or is_count):
        raise ValueError(
            "preprocessing.validation_size must be a fraction in (0, 1) or a count in "
            f"[10, {total - 10}], got {size!r}"
        )
    train_idx, validation_idx = train_test_split(
        np.arange(total),
        test_size=size,
        stratify=split["labels"],
        random_state=int(params["seed"]),
        shuffle=True,
    )
    # Sorted indices keep examples in source order: reproducible and easy to trace back.
    train_idx.sort()
    validation_idx.sort()

    def take(idx: np.ndarray) -> dict[str, np.ndarray]:
        return {"images": split["images"][idx], "labels": split["labels"][idx]}

    return take(train_idx), take(validation_idx)


def augment_with_shifts(
    split: dict[str, np.ndarray], params: dict[str, Any]
) -> dict[str, np.ndarray]:
    """Add randomly shifted copies of the training images (data augmentation).

    Each copy moves every image by a whole number of pixels, drawn per image and
    axis from ``[-max_shift, max_shift]``; the pixels shifted in are 0 (background).

    Args:
        split: the training split, ``images`` (N, H, W, C) and ``labels`` (N,).
        params: ``enabled`` (``False`` returns ``split`` as it is), ``copies`` (shifted
            copies per image), ``max_shift`` (pixels) and ``seed``.

    Returns:
        The original examples followed by ``copies`` shifted copies of each.

    Raises:
        ValueError: ``copies`` or ``max_shift`` is not a usable whole number.
    """
    if not params["enabled"]:
        return split
    images, labels = split["images"], split["labels"]
    copies, shift = params["copies"], params["max_shift"]
    height, width = images.shape[1:3]
    if isinstance(copies, bool) or not isinstance(copies, int) or copies < 1:
        raise ValueError(f"preprocessing.augmentation.copies must be >= 1, got {copies!r}")
    if isinstance(shift, bool) or not isinstance(shift, int) or not 1 <= shift < height // 2:
        raise ValueError(
            "preprocessing.augmentation.max_shift must be a whole number of pixels in "
            f"[1, {height // 2 - 1}], got {shift!r}"
        )
    rng = np.random.default_rng(params["seed"])
    # Zero borders of `shift` pixels; a shifted image is a window of the padded one.
    padded = np.pad(images, ((0, 0), (shift, shift), (shift, shift), (0, 0)))
    shifted = np.empty((copies, *images.shape), dtype=images.dtype)
    for copy in range(copies):
        moves = rng.integers(-shift, shift + 1, size=(len(images), 2))
        for i, (dy, dx) in enumerate(moves):
            top, left = shift - dy, shift - dx
            shifted[copy, i] = padded[i, top : top + height, left : left + width]
    return {
        "images": np.concatenate([images, *shifted]),
        "labels": np.concatenate([labels] * (copies + 1)),
    }


def fingerprint_model_input(
    train: ImageShards, validation: ImageShards, test: ImageShards
) -> dict[str, Any]:
    """Combine the splits' content hashes into one fingerprint for lineage.

    Each split's SHA-256 (of its dtypes, shapes and bytes) was taken when it was
    written; ``model_input`` hashes the three together and is logged with every
    model trained on them.
    """
    splits = {"train": train, "validation": validation, "test": test}
    combined = hashlib.sha256(
        "".join(f"{name}:{splits[name].sha256};" for name in sorted(splits)).encode()
    )
    return {
        "model_input": combined.hexdigest(),
        "splits": {
            name: {
                "sha256": split.sha256,
                "num_examples": split.num_examples,
                "label_counts": list(split.label_counts),
                "path": split.path,
            }
            for name, split in splits.items()
        },
    }


def outcome(outputs: Mapping[str, Any]) -> str | None:
    """The stage's line in the run's log: examples per split and the data fingerprint."""
    fingerprint = outputs.get("model_input_fingerprint")
    if fingerprint is None:
        return None
    splits = fingerprint.get("splits", {})
    counts = " / ".join(
        f"{int(splits[name]['num_examples']):,} {name}"
        for name in ("train", "validation", "test")
        if name in splits
    )
    return (
        f"preprocessing: {counts or '?'} images scaled to [0, 1] and sharded; "
        f"fingerprint {str(fingerprint.get('model_input', '?'))[:12]}"
    )
