"""Preprocessing nodes: pixels to [0, 1], a stratified validation split, a fingerprint."""

from __future__ import annotations

import hashlib
from typing import Any

import numpy as np
from sklearn.model_selection import train_test_split

from mnist_pipeline.datasets import ImageShards

MAX_PIXEL = 255.0


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
