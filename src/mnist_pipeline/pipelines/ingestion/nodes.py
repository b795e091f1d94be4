"""Ingestion nodes: check the raw splits and describe them.

The raw splits arrive already parsed and verified by
:class:`~mnist_pipeline.datasets.MNISTIDXDataset` (checksums, IDX headers,
image/label agreement); these nodes check what only the whole dataset shows
and summarise it for people.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
import pandas as pd

# Figures are built with the object API, not pyplot: no global figure registry
# to leak into, no GUI backend to pick, the same in a notebook and on a server.
from matplotlib.figure import Figure

from mnist_pipeline.image_contract import NUM_CLASSES


def validate_split(split: dict[str, np.ndarray], expected: dict[str, Any]) -> dict:
    """Check a parsed split against what the dataset should hold.

    Args:
        split: ``{"images": uint8 (N, 28, 28), "labels": uint8 (N,)}``.
        expected: ``name`` (for messages), ``num_images`` (``None`` accepts
            any count) and ``min_images_per_class``.

    Returns:
        The split, unchanged.

    Raises:
        ValueError: a count differs from what is expected.
    """
    images, labels = split["images"], split["labels"]
    name = expected["name"]
    wanted = expected["num_images"]
    if wanted is not None and len(images) != int(wanted):
        raise ValueError(f"{name}: expected {int(wanted):,} images, found {len(images):,}")
    counts = np.bincount(labels, minlength=NUM_CLASSES)
    minimum = int(expected["min_images_per_class"])
    short = [digit for digit, count in enumerate(counts) if count < minimum]
    if short:
        raise ValueError(
            f"{name}: digits {short} have fewer than {minimum} images "
            f"(counts per digit: {counts.tolist()})"
        )
    return split


def summarise_classes(train: dict[str, np.ndarray], test: dict[str, np.ndarray]) -> pd.DataFrame:
    """Images per digit in each split, with each digit's share of its split."""
    train_counts = np.bincount(train["labels"], minlength=NUM_CLASSES)
    test_counts = np.bincount(test["labels"], minlength=NUM_CLASSES)
    return pd.DataFrame(
        {
            "digit": np.arange(NUM_CLASSES),
            "train_images": train_counts,
            "test_images": test_counts,
            "train_share": np.round(train_counts / max(train_counts.sum(), 1), 4),
            "test_share": np.round(test_counts / max(test_counts.sum(), 1), 4),
        }
    )


def _pixel_stats(images: np.ndarray) -> dict[str, float]:
    # A 256-bin histogram gives every statistic in one pass over uint8 pixels,
    # without a float64 copy of the whole split.
    histogram = np.bincount(images.ravel(), minlength=256).astype(np.float64)
    total = histogram.sum()
    values = np.arange(len(histogram), dtype=np.float64)
    present = np.flatnonzero(histogram)
    mean = float(values @ histogram / total) if total else 0.0
    variance = float(((values - mean) ** 2) @ histogram / total) if total else 0.0
    return {
        "num_images": len(images),
        "height": int(images.shape[1]),
        "width": int(images.shape[2]),
        "min": float(present[0]) if total else 0.0,
        "max": float(present[-1]) if total else 0.0,
        "mean": round(mean, 4),
        "std": round(variance**0.5, 4),
        "zero_fraction": round(float(histogram[0] / total), 4) if total else 0.0,
    }


def summarise_pixels(
    train: dict[str, np.ndarray], test: dict[str, np.ndarray]
) -> dict[str, dict[str, float]]:
    """Pixel statistics (range, mean, std, share of background) per split."""
    return {"train": _pixel_stats(train["images"]), "test": _pixel_stats(test["images"])}


def plot_class_balance(class_summary: pd.DataFrame) -> Figure:
    """A bar chart of images per digit, train beside test."""
    figure = Figure(figsize=(8, 4))
    axis = figure.subplots()
    width = 0.4
    digits = class_summary["digit"].to_numpy()
    axis.bar(digits - width / 2, class_summary["train_images"], width, label="train")
    axis.bar(digits + width / 2, class_summary["test_images"], width, label="test")
    axis.set_xticks(digits)
    axis.set_xlabel("digit")
    axis.set_ylabel("images")
    axis.set_title("MNIST images per digit")
    # Headroom above the tallest bar keeps the legend clear of the bars.
    axis.set_ylim(0, class_summary[["train_images", "test_images"]].to_numpy().max() * 1.18)
    axis.legend(ncols=2, loc="upper center")
    figure.tight_layout()
    return figure


def plot_samples(split: dict[str, np.ndarray], per_class: int = 8) -> Figure:
    """A grid of the first ``per_class`` images of each digit (one row per digit)."""
    height, width = split["images"].shape[1:3]
    mosaic = np.zeros((NUM_CLASSES * height, per_class * width), dtype=np.uint8)
    for digit in range(NUM_CLASSES):
        for column, index in enumerate(np.flatnonzero(split["labels"] == digit)[:per_class]):
            mosaic[digit * height : (digit + 1) * height, column * width : (column + 1) * width] = (
                split["images"][index]
            )
    figure = Figure(figsize=(per_class * 0.8, NUM_CLASSES * 0.8 + 0.4))
    axis = figure.subplots()
    axis.imshow(mosaic, cmap="gray", vmin=0, vmax=255)
    axis.set_yticks(np.arange(NUM_CLASSES) * height + height / 2, labels=range(NUM_CLASSES))
    axis.set_xticks([])
    axis.set_ylabel("digit")
    axis.set_title("First training images of each digit")
    figure.tight_layout()
    return figure


def outcome(outputs: Mapping[str, Any]) -> str | None:
    """The stage's line in the run's log, from its nodes' outputs: images per split, their
    shape, the class balance (``None`` until both splits are validated)."""
    train, test = outputs.get("mnist_train"), outputs.get("mnist_test")
    if train is None or test is None:
        return None
    shape = "×".join(str(size) for size in train["images"].shape[1:])
    line = (
        f"ingestion: {len(train['images']):,} train + {len(test['images']):,} test images "
        f"verified (SHA-256, IDX headers), {shape} pixels"
    )
    summary = outputs.get("mnist_class_summary")
    if summary is not None and "train_share" in summary.columns:
        shares = summary["train_share"]
        line += f"; classes {100 * shares.min():.1f}–{100 * shares.max():.1f} % of train"
    return line
